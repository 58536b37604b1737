/**
 * The one file that speaks `@aws-sdk/client-s3` (v3). It turns the SDK into a few promise calls on one
 * bucket with our error classes and AbortSignal support; no SDK type leaves this file.
 *
 * Where the client finds its settings (the AWS SDK's usual environment):
 * - endpoint: `opts.endpoint`, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS itself. A
 *   custom endpoint (MinIO, moto, Ceph...) gets path-style addressing (`http://host/bucket/key`), which
 *   every S3-compatible server answers, unlike virtual-host names.
 * - region: `opts.region`, else AWS_REGION / AWS_DEFAULT_REGION, else the SDK's profile lookup
 *   (AWS_PROFILE, ~/.aws/config); `us-east-1` with a custom endpoint when none is set. Requests sent to
 *   the wrong AWS region follow the redirect to the bucket's region.
 * - credentials: `opts.credentials`, else the SDK's default chain (AWS_ACCESS_KEY_ID /
 *   AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, profiles, web identity, container and instance roles).
 *
 * Create-only writes send `If-None-Match: *` on PutObject and CompleteMultipartUpload: the server
 * refuses with 412 when the key exists (ObjectExistsError), atomically. AWS S3 honours it since
 * August 2024, MinIO and moto (the test server) too.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { LimitError, SnapswarmError } from '../errors.ts'
import { type Logger, silentLogger } from '../obs/log.ts'
import { readBodyLimited } from './body.ts'
import { abortReason, raceAbort } from '../util/abort.ts'
import { BucketNotFoundError, NotFoundError, ObjectExistsError, StorageError, UploadStateError } from './store.ts'

export interface S3RetryPolicy {
  /** Attempts after the first; 0 disables retries (the SDK backs off exponentially with jitter). */
  maxRetries: number
}

export const S3_DEFAULT_RETRY: S3RetryPolicy = { maxRetries: 3 }
/** Per HTTP request (connect and each response); a 50 MiB part at a slow 5 MB/s still fits. */
export const S3_DEFAULT_TIMEOUT_MS = 120_000

export interface S3ClientOptions {
  bucket: string
  /** `http://127.0.0.1:9000`; default AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS. */
  endpoint?: string
  region?: string
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  retry?: Partial<S3RetryPolicy>
  timeoutMs?: number
  logger?: Logger
}

export interface S3ObjectInfo {
  size: number
  metadata: Record<string, string>
}

export interface S3UploadInfo {
  key: string
  uploadId: string
  /** ms since the epoch. */
  initiated: number
}

/** Connection failures a retry may cure. */
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNABORTED', 'ENOTFOUND'])
/** Of those, the ones that mean no connection was made at all. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'])
/** Server answers to a complete that no retry can fix: the upload itself is wrong. */
const UPLOAD_STATE_ERRORS = new Set(['InvalidPart', 'InvalidPartOrder', 'EntityTooSmall', 'NoSuchUpload'])

interface SdkError {
  name?: string
  code?: unknown
  message?: string
  $metadata?: { httpStatusCode?: number }
  cause?: unknown
}

function networkCode(e: SdkError): string | undefined {
  for (let cur: SdkError | undefined = e, i = 0; cur && i < 4; cur = cur.cause as SdkError | undefined, i++) {
    if (typeof cur.code === 'string' && NETWORK_CODES.has(cur.code)) return cur.code
  }
  return /socket hang up|ECONNRESET/i.test(e.message ?? '') ? 'ECONNRESET' : undefined
}

/** Maps an SDK error to NotFoundError, ObjectExistsError, UploadStateError or a coded StorageError. */
export function s3Error(err: unknown, op: string, url: string): Error {
  if (err instanceof SnapswarmError) return err
  const e = (err ?? {}) as SdkError
  if (e.name === 'AbortError') return err as Error
  const status = e.$metadata?.httpStatusCode
  const name = e.name ?? 'Error'
  const detail = (e.message ?? String(err)).slice(0, 300)
  const fail = (what: string, retryable: boolean) =>
    new StorageError(`s3 ${op} ${url}: ${what}`, { retryable, status, cause: err })
  // The same error as a missing GCS bucket or `file:` directory: nothing in the bucket can exist.
  if (name === 'NoSuchBucket') return new BucketNotFoundError(`s3 ${op} ${url}: the bucket`, { cause: err })
  if (name === 'NoSuchKey' || (status === 404 && name === 'NotFound')) return new NotFoundError(url, { cause: err })
  if (status === 412 || name === 'PreconditionFailed') return new ObjectExistsError(url, { cause: err })
  if (UPLOAD_STATE_ERRORS.has(name)) return new UploadStateError(`s3 ${op} ${url}: the server refused the upload: ${name}: ${detail}`)
  if (name === 'CredentialsProviderError') {
    return fail(`no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE): ${detail}`, false)
  }
  if (/region is missing/i.test(detail)) return fail('no AWS region (set AWS_REGION, or a region in the AWS profile)', false)
  if (status === 401 || status === 403) return fail(`permission denied: HTTP ${status} ${name}: ${detail}`, false)
  const net = networkCode(e)
  if (status === undefined && net !== undefined) {
    const what = UNREACHABLE_CODES.has(net) ? 'endpoint unreachable' : 'connection failed'
    return fail(`${what}: ${net}: ${detail}`, true)
  }
  if (status === undefined && (name === 'TimeoutError' || /timed? ?out/i.test(detail))) return fail(`timeout: ${detail}`, true)
  // AWS: a concurrent conditional write on the same key; the request may be retried.
  if (status === 409 && name === 'ConditionalRequestConflict') return fail(`HTTP 409 ${name}: ${detail}`, true)
  const retryable = status === undefined ? false : status === 408 || status === 429 || status >= 500
  return fail(`${status === undefined ? name : `HTTP ${status} ${name}`}: ${detail}`, retryable)
}

/** The endpoint from the options or the environment; undefined means AWS itself. */
export function s3Endpoint(explicit?: string): string | undefined {
  const raw = explicit ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL
  if (raw === undefined || raw === '') return undefined
  return (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`).replace(/\/+$/, '')
}

export class S3Api {
  readonly bucket: string
  private readonly sdk: S3Client
  private readonly timeoutMs: number

  constructor(opts: S3ClientOptions) {
    this.bucket = opts.bucket
    const endpoint = s3Endpoint(opts.endpoint)
    const timeout = opts.timeoutMs ?? S3_DEFAULT_TIMEOUT_MS
    this.timeoutMs = timeout
    const region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (endpoint ? 'us-east-1' : undefined)
    const log = (opts.logger ?? silentLogger).child({ component: 's3-sdk' })
    this.sdk = new S3Client({
      endpoint,
      forcePathStyle: endpoint !== undefined,
      ...(region ? { region } : {}),
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      followRegionRedirects: true,
      maxAttempts: Math.max(0, (opts.retry ?? S3_DEFAULT_RETRY).maxRetries ?? S3_DEFAULT_RETRY.maxRetries) + 1,
      requestHandler: { connectionTimeout: timeout, requestTimeout: timeout, throwOnRequestTimeout: true },
      // The SDK's own warnings go to our logger, never to the console.
      logger: { trace() {}, debug() {}, info() {}, warn: (...a: unknown[]) => log.warn({ sdk: a.map(String) }, 'aws sdk warning'), error: (...a: unknown[]) => log.warn({ sdk: a.map(String) }, 'aws sdk error') },
    })
  }

  url(key: string): string {
    return `s3://${this.bucket}/${key}`
  }

  /** One PutObject with Content-Length. `createOnly`: If-None-Match `*` (ObjectExistsError when taken). */
  put(key: string, data: Uint8Array, opts: { metadata?: Record<string, string>; createOnly?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    if (opts.signal?.aborted) return Promise.reject(abortReason(opts.signal))
    const cmd = new PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      Body: data,
      ContentLength: data.byteLength,
      ContentType: 'application/octet-stream',
      Metadata: opts.metadata,
      IfNoneMatch: opts.createOnly ? '*' : undefined,
    })
    return raceAbort(this.send('put', key, (sdk, o) => sdk.send(cmd, o)).then(() => {}), opts.signal)
  }

  async head(key: string, signal?: AbortSignal): Promise<S3ObjectInfo | null> {
    try {
      const out = await this.send('stat', key, (sdk, o) => sdk.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), o), signal)
      return { size: Number(out.ContentLength ?? 0), metadata: { ...(out.Metadata ?? {}) } }
    } catch (err) {
      if (err instanceof NotFoundError) return null
      throw err
    }
  }

  /** Whether the bucket exists: HeadBucket's 404 is false, other failures are errors. */
  async bucketExists(): Promise<boolean> {
    try {
      await this.send('bucket', '', (sdk, o) => sdk.send(new HeadBucketCommand({ Bucket: this.bucket }), o))
      return true
    } catch (err) {
      if (err instanceof NotFoundError) return false
      if (err instanceof StorageError && err.status === 404) return false
      throw err
    }
  }

  /**
   * Downloads `[start, end]` (inclusive; the whole object without a range), refusing more than `limit`
   * bytes: before reading when the length is announced, while reading otherwise.
   */
  get(key: string, range: { start: number; end: number } | undefined, limit: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    const local = new AbortController()
    const cmd = new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range ? `bytes=${range.start}-${range.end}` : undefined })
    const run = async () => {
      const out = await this.send('get', key, (sdk, o) => sdk.send(cmd, o), local.signal)
      const body = out.Body as (AsyncIterable<Uint8Array> & { destroy?(e?: Error): void }) | undefined
      if (out.ContentLength !== undefined && out.ContentLength > limit) {
        body?.destroy?.()
        throw new LimitError(`object ${this.url(key)}: expected at most ${limit} bytes, found ${out.ContentLength}`)
      }
      if (body === undefined) return new Uint8Array(0)
      // An abort after the headers arrived must stop the body too, not only the caller's wait.
      local.signal.addEventListener('abort', () => body.destroy?.(), { once: true })
      const url = this.url(key)
      return readBodyLimited(body, { limit, idleMs: this.timeoutMs, op: 's3 get', url, mapError: (err) => s3Error(err, 'get', url) })
    }
    return raceAbort(run(), signal, () => local.abort(signal?.reason))
  }

  /** Every key under `prefix` (all pages). */
  async list(prefix: string, signal?: AbortSignal): Promise<string[]> {
    const keys: string[] = []
    let token: string | undefined
    do {
      const cmd = new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token })
      const out = await this.send('list', `${prefix}*`, (sdk, o) => sdk.send(cmd, o), signal)
      for (const o of out.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key)
      token = out.IsTruncated ? out.NextContinuationToken : undefined
    } while (token)
    return keys
  }

  /** Idempotent: S3 answers 204 for a missing key too. */
  async delete(key: string, signal?: AbortSignal): Promise<void> {
    await this.send('delete', key, (sdk, o) => sdk.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), o), signal)
  }

  async createMultipart(key: string, metadata: Record<string, string>): Promise<string> {
    const out = await this.send('create upload', key, (sdk, o) => sdk.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, Metadata: metadata, ContentType: 'application/octet-stream' }), o))
    if (!out.UploadId) throw new StorageError(`s3 create upload ${this.url(key)}: expected an upload id, found none`, { retryable: true })
    return out.UploadId
  }

  /** Returns the part's ETag. */
  async uploadPart(key: string, uploadId: string, partNumber: number, data: Uint8Array): Promise<string> {
    const cmd = new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: data, ContentLength: data.byteLength })
    const out = await this.send(`upload part ${partNumber}`, key, (sdk, o) => sdk.send(cmd, o))
    if (!out.ETag) throw new StorageError(`s3 upload part ${partNumber} ${this.url(key)}: expected an ETag, found none`, { retryable: true })
    return out.ETag
  }

  /** `createOnly`: If-None-Match `*`; a taken key fails with ObjectExistsError and the upload stays open. */
  async completeMultipart(key: string, uploadId: string, parts: { partNumber: number; etag: string }[], createOnly: boolean): Promise<void> {
    const cmd = new CompleteMultipartUploadCommand({
      Bucket: this.bucket,
      Key: key,
      UploadId: uploadId,
      IfNoneMatch: createOnly ? '*' : undefined,
      MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
    })
    await this.send('complete upload', key, (sdk, o) => sdk.send(cmd, o))
  }

  /** Idempotent: an upload already gone (aborted or completed) counts as aborted. */
  async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.send('abort upload', key, (sdk, o) => sdk.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), o))
    } catch (err) {
      if (err instanceof UploadStateError && /NoSuchUpload/.test(err.message)) return
      throw err
    }
  }

  /** Multipart uploads in progress whose key starts with `prefix` (all pages). */
  async listUploads(prefix: string): Promise<S3UploadInfo[]> {
    const uploads: S3UploadInfo[] = []
    let keyMarker: string | undefined
    let idMarker: string | undefined
    do {
      const cmd = new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker })
      const out = await this.send('list uploads', `${prefix}*`, (sdk, o) => sdk.send(cmd, o))
      for (const u of out.Uploads ?? []) {
        if (u.Key && u.UploadId) uploads.push({ key: u.Key, uploadId: u.UploadId, initiated: u.Initiated?.getTime() ?? 0 })
      }
      const more = out.IsTruncated === true
      keyMarker = more ? out.NextKeyMarker : undefined
      idMarker = more ? out.NextUploadIdMarker : undefined
    } while (keyMarker)
    return uploads
  }

  /** When the upload last received a part (ms since the epoch; 0 without parts). */
  async newestPart(key: string, uploadId: string): Promise<number> {
    let newest = 0
    let marker: string | undefined
    do {
      const out = await this.send('list parts', key, (sdk, o) => sdk.send(new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }), o))
      for (const p of out.Parts ?? []) newest = Math.max(newest, p.LastModified?.getTime() ?? 0)
      marker = out.IsTruncated ? out.NextPartNumberMarker : undefined
    } while (marker)
    return newest
  }

  destroy(): void {
    this.sdk.destroy()
  }

  /**
   * Runs one SDK call; `signal` cancels the request itself, and an aborted signal rejects with its
   * reason (not the SDK's own abort error). Errors come out coded (s3Error).
   */
  private async send<T>(op: string, key: string, call: (sdk: S3Client, opts: { abortSignal?: AbortSignal }) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) throw abortReason(signal)
    try {
      return await call(this.sdk, signal ? { abortSignal: signal } : {})
    } catch (err) {
      if (signal?.aborted) throw abortReason(signal)
      throw s3Error(err, op, this.url(key))
    }
  }
}
