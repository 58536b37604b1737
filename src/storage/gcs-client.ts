/**
 * The one file that speaks `@google-cloud/storage` (v7). It turns the SDK into a few promise calls on
 * one bucket with our error classes and AbortSignal support; no SDK type leaves this file.
 *
 * SDK quirks handled here:
 * - Uploads go through `makeAuthenticatedRequest` with a Buffer body: the SDK's own upload streams its
 *   body (chunked, no Content-Length) and cannot be cancelled.
 * - `bucket.combine` drops custom metadata of the destination, so compose is a raw JSON API call.
 * - With STORAGE_EMULATOR_HOST set the SDK uses the variable verbatim as its JSON API base URL (no
 *   `/storage/v1`), which fake-gcs-server answers with 404; the base URL is set explicitly instead.
 * - The SDK has no cancellation for non-stream requests: an aborted signal rejects at once, the request
 *   runs out in the background (bounded by the request timeout). Downloads are streams and are destroyed,
 *   but only once their response arrived (destroyed earlier, the SDK throws out of an event handler).
 * - The request timeout ends when a download's headers arrive: an idle timer bounds its body (body.ts).
 * - Create-only writes send `ifGenerationMatch=0` (412 → ObjectExistsError). fake-gcs-server v1.55.1,
 *   the emulator of the tests, honours it on multipart (and resumable) uploads only: it ignores it on
 *   `uploadType=media`, on compose and on copy/rewrite (it overwrites). So create-only puts always go
 *   as multipart uploads, and a create-only compose is also checked for an existing destination first
 *   (gcs-upload.ts); real GCS honours the precondition on compose, which is what makes it atomic there.
 */
import type { Readable } from 'node:stream'
import { IdempotencyStrategy, Storage, type StorageOptions } from '@google-cloud/storage'
import { storageEmulatorHost } from '../config/env.ts'
import { SnapswarmError } from '../errors.ts'
import { type Body, readBodyLimited } from './body.ts'
import { abortReason, raceAbort } from '../util/abort.ts'
import { NotFoundError, ObjectExistsError, StorageError } from './store.ts'

export interface RetryPolicy {
  /** Attempts after the first; 0 disables retries. */
  maxRetries: number
  /** Cap of one backoff delay (the SDK grows them 2^n seconds plus jitter). */
  maxDelayMs: number
  /** No retry starts after this long since the first attempt. */
  totalTimeoutMs: number
}

export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 3, maxDelayMs: 8_000, totalTimeoutMs: 60_000 }
/** Per HTTP request; a 50 MiB part at a slow 5 MB/s still fits. */
export const DEFAULT_TIMEOUT_MS = 120_000

export interface GcsClientOptions {
  bucket: string
  /** Emulator or private endpoint, e.g. `http://127.0.0.1:4443`; default STORAGE_EMULATOR_HOST, else real GCS. */
  endpoint?: string
  projectId?: string
  retry?: Partial<RetryPolicy>
  timeoutMs?: number
  /** Send Google credentials to a custom endpoint too (not for emulators). */
  authWithCustomEndpoint?: boolean
}

export interface UploadOptions {
  metadata?: Record<string, string>
  signal?: AbortSignal
  /** Fail with ObjectExistsError rather than replace an existing object. */
  createOnly?: boolean
}

export interface GcsObjectInfo {
  name: string
  size: number
  metadata: Record<string, string>
  /** Creation time, ms since the epoch. */
  created: number
  generation: string
}

/** Connection failures a retry may cure (node-fetch FetchError codes and types). */
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNABORTED'])

/** Maps an SDK / HTTP error to NotFoundError or a StorageError that says whether a retry may help. */
export function gcsError(err: unknown, op: string, url: string): Error {
  if (err instanceof SnapswarmError) return err
  const e = err as { code?: unknown; type?: string; name?: string; message?: string }
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return err as Error
  const status = typeof e?.code === 'number' ? e.code : undefined
  if (status === 404) return new NotFoundError(url, { cause: err })
  // Only create-only writes carry a precondition: 412 means the name is taken.
  if (status === 412) return new ObjectExistsError(url, { cause: err })
  const network =
    (typeof e?.code === 'string' && NETWORK_CODES.has(e.code)) ||
    e?.type === 'request-timeout' ||
    e?.type === 'body-timeout' ||
    /socket hang up|premature close|ECONNRESET/i.test(e?.message ?? '')
  const retryable = status !== undefined ? status === 408 || status === 429 || status >= 500 : network
  const what = status !== undefined ? `HTTP ${status}` : String(e?.code ?? e?.type ?? 'error')
  const detail = (e?.message ?? String(err)).slice(0, 300)
  return new StorageError(`gcs ${op} ${url}: ${what}: ${detail}`, { retryable, status, cause: err })
}

export class GcsClient {
  readonly bucketName: string
  private readonly storage: Storage
  private readonly jsonApi: string
  private readonly uploadApi: string
  private readonly timeoutMs: number

  constructor(opts: GcsClientOptions) {
    this.bucketName = opts.bucket
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const raw = opts.endpoint ?? storageEmulatorHost()
    const endpoint = raw === undefined || raw === '' ? undefined : normalizeEndpoint(raw)
    this.storage = new Storage({
      apiEndpoint: endpoint,
      // Emulators need no project; a fixed one stops the SDK from probing the environment for it.
      projectId: opts.projectId ?? (endpoint ? 'snapswarm' : undefined),
      useAuthWithCustomEndpoint: opts.authWithCustomEndpoint,
      timeout: this.timeoutMs,
      retryOptions: retryOptions({ ...DEFAULT_RETRY, ...opts.retry }),
    })
    const api = endpoint ?? this.storage.apiEndpoint
    this.jsonApi = `${api}/storage/v1`
    this.uploadApi = `${api}/upload/storage/v1`
    // See the file comment: the SDK's base URL is wrong when STORAGE_EMULATOR_HOST is set.
    ;(this.storage as unknown as { baseUrl: string }).baseUrl = this.jsonApi
  }

  url(name: string): string {
    return `gs://${this.bucketName}/${name}`
  }

  /**
   * One non-resumable request carrying the whole object, with Content-Length. `createOnly`: fails with
   * ObjectExistsError instead of replacing an existing object (sent as a multipart upload, the one
   * form whose precondition the emulator honours too; see the file comment).
   */
  upload(name: string, data: Uint8Array, opts: UploadOptions = {}): Promise<void> {
    const { metadata, signal, createOnly = false } = opts
    // Checked before the request starts: once started it cannot be called back.
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    const multipart = createOnly || (metadata !== undefined && Object.keys(metadata).length > 0)
    const req = multipart ? multipartBody(name, body, metadata ?? {}) : { body, type: 'application/octet-stream' }
    const p = this.call('upload', name, {
      method: 'POST',
      uri: `${this.uploadApi}/b/${encodeURIComponent(this.bucketName)}/o`,
      qs: { ...(multipart ? { uploadType: 'multipart' } : { uploadType: 'media', name }), ...(createOnly ? { ifGenerationMatch: 0 } : {}) },
      headers: { 'Content-Type': req.type, 'Content-Length': String(req.body.byteLength) },
      body: req.body,
    })
    return raceAbort(p.then(() => {}), signal)
  }

  /**
   * Concatenates ≤ 32 sources (pinned to their generations) into `dest`; returns dest's generation.
   * `createOnly`: ObjectExistsError if `dest` exists (atomic on GCS; the emulator ignores it).
   */
  async compose(sources: { name: string; generation: string }[], dest: string, metadata?: Record<string, string>, createOnly = false) {
    const body = (await this.call('compose', dest, {
      method: 'POST',
      uri: `${this.jsonApi}/b/${encodeURIComponent(this.bucketName)}/o/${encodeURIComponent(dest)}/compose`,
      qs: createOnly ? { ifGenerationMatch: 0 } : {},
      json: {
        destination: { contentType: 'application/octet-stream', metadata },
        sourceObjects: sources.map((s) => ({ name: s.name, generation: s.generation })),
      },
    })) as Record<string, unknown>
    return String(body.generation)
  }

  stat(name: string, signal?: AbortSignal): Promise<GcsObjectInfo | null> {
    return this.waitFor(signal, async () => {
      try {
        const [meta] = await this.storage.bucket(this.bucketName).file(name).getMetadata()
        return toInfo(meta)
      } catch (err) {
        const e = gcsError(err, 'stat', this.url(name))
        if (e instanceof NotFoundError) return null
        throw e
      }
    })
  }

  /** Whether the bucket exists (its metadata answers); 404 is false, other failures are errors. */
  async bucketExists(): Promise<boolean> {
    try {
      await this.storage.bucket(this.bucketName).getMetadata()
      return true
    } catch (err) {
      const e = gcsError(err, 'bucket', `gs://${this.bucketName}`)
      if (e instanceof NotFoundError) return false
      throw e
    }
  }

  list(prefix: string, signal?: AbortSignal): Promise<GcsObjectInfo[]> {
    return this.waitFor(signal, async () => {
      try {
        const [files] = await this.storage.bucket(this.bucketName).getFiles({ prefix, autoPaginate: true })
        return files.map((f) => toInfo(f.metadata))
      } catch (err) {
        throw gcsError(err, 'list', this.url(`${prefix}*`))
      }
    })
  }

  /** Idempotent: a missing object counts as deleted (a retried delete may find it gone). */
  delete(name: string, signal?: AbortSignal): Promise<void> {
    return this.waitFor(signal, async () => {
      try {
        await this.storage.bucket(this.bucketName).file(name).delete({ ignoreNotFound: true })
      } catch (err) {
        throw gcsError(err, 'delete', this.url(name))
      }
    })
  }

  /**
   * Starts `call` unless `signal` is already aborted, and stops waiting for it when `signal` fires.
   * The SDK's metadata calls cannot be cancelled: a request already sent runs on.
   */
  private waitFor<T>(signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> {
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    return raceAbort(call(), signal)
  }

  /**
   * Downloads `[start, end]` (inclusive; whole object without a range) into memory, refusing more than
   * `limit` bytes; a body that sends nothing for the request timeout fails with a retryable timeout.
   * Ranged reads skip the SDK's hash check (hashes cover whole objects only).
   */
  read(name: string, range: { start: number; end: number } | undefined, limit: number, signal?: AbortSignal) {
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    const stream = this.storage
      .bucket(this.bucketName)
      .file(name)
      .createReadStream({ ...range, decompress: false, validation: range ? false : 'crc32c' })
    const url = this.url(name)
    const body = destroyAfterResponse(stream)
    // The SDK's timeout ends when the headers arrive: the idle timer also bounds a body that stalls.
    const done = readBodyLimited(body, { limit, idleMs: this.timeoutMs, op: 'gcs read', url, mapError: (err) => gcsError(err, 'read', url) })
    return raceAbort(done, signal, () => body.destroy(signal?.reason))
  }

  private call(op: string, name: string, reqOpts: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const cb = (err: Error | null, body?: unknown) =>
        err ? reject(gcsError(err, op, this.url(name))) : resolve(body)
      this.storage.makeAuthenticatedRequest({ ...reqOpts, timeout: this.timeoutMs } as never, cb as never)
    })
  }
}

/**
 * The SDK's download stream with a destroy that is safe at any time. Destroyed before its response
 * arrived, the SDK later pipes the response into the destroyed stream, which throws out of an event
 * handler and would crash the process; so until the response is there, destroying waits for it (a
 * request that never answers ends with the SDK's request timeout).
 */
function destroyAfterResponse(stream: Readable): Body & { destroy(e?: Error): void } {
  let responded = false
  stream.once('response', () => {
    responded = true
  })
  let destroying = false
  const destroy = (err?: Error) => {
    if (responded) return void stream.destroy(err)
    if (destroying) return
    destroying = true
    // After the SDK's own response handling (which runs right after the event) has set up its pipes.
    stream.once('response', () => setImmediate(() => stream.destroy(err)))
  }
  return { [Symbol.asyncIterator]: () => stream[Symbol.asyncIterator](), destroy }
}

/** `host:port` or a URL; without a scheme, http (emulators); no trailing `/` or `/storage/v1`. */
export function normalizeEndpoint(endpoint: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`
  return withScheme.replace(/\/+$/, '').replace(/\/storage\/v1$/, '')
}

function retryOptions(p: RetryPolicy): StorageOptions['retryOptions'] {
  // The SDK reads maxRetries 0 as "default (3)": turn retries off with autoRetry instead.
  if (p.maxRetries <= 0) return { autoRetry: false, idempotencyStrategy: IdempotencyStrategy.RetryNever }
  return {
    autoRetry: true,
    maxRetries: p.maxRetries,
    retryDelayMultiplier: 2,
    maxRetryDelay: p.maxDelayMs / 1000,
    totalTimeout: p.totalTimeoutMs / 1000,
    // Every write here is safe to repeat: parts are private to one upload id, compose pins source
    // generations, delete ignores 404, and a create-only write repeated after its first attempt landed
    // fails with ObjectExistsError, which the build upload resolves by comparing what is stored. The
    // default (RetryConditional) would skip retrying most of them, and flips a client-wide autoRetry flag.
    idempotencyStrategy: IdempotencyStrategy.RetryAlways,
  }
}

/** `multipart/related` body: JSON resource (name + metadata), then the bytes; one buffer, one length. */
function multipartBody(name: string, data: Buffer, metadata: Record<string, string>) {
  const boundary = `snapswarm-${crypto.randomUUID()}`
  const resource = JSON.stringify({ name, contentType: 'application/octet-stream', metadata })
  const head = `--${boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n${resource}\r\n--${boundary}\r\nContent-Type: application/octet-stream\r\n\r\n`
  const body = Buffer.concat([Buffer.from(head), data, Buffer.from(`\r\n--${boundary}--\r\n`)])
  return { body, type: `multipart/related; boundary=${boundary}` }
}

function toInfo(meta: {
  name?: string
  size?: string | number
  metadata?: Record<string, unknown>
  timeCreated?: string
  generation?: string | number
}): GcsObjectInfo {
  const metadata: Record<string, string> = {}
  for (const [k, v] of Object.entries(meta.metadata ?? {})) if (v !== null && v !== undefined) metadata[k] = String(v)
  return {
    name: meta.name ?? '',
    size: Number(meta.size ?? 0),
    metadata,
    created: meta.timeCreated ? Date.parse(meta.timeCreated) : 0,
    generation: String(meta.generation ?? ''),
  }
}
