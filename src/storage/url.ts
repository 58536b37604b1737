/**
 * Storage URLs → stores: `file:///absolute/path` (FsStore), `gs://bucket[/prefix]` (GcsStore) and
 * `s3://bucket[/prefix]` (S3Store).
 * The GCS endpoint is `opts.gcsEndpoint` (`--gcs-endpoint`), else STORAGE_EMULATOR_HOST, else real GCS.
 */
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { InvalidArgumentError } from '../errors.ts'
import type { Logger } from '../obs/log.ts'
import { FsStore } from './fs-store.ts'
import type { RetryPolicy } from './gcs-client.ts'
import { GcsStore } from './gcs-store.ts'
import { S3Store, type S3StoreOptions } from './s3-store.ts'
import type { ObjectStore } from './store.ts'
import { pseudoFsOf } from '../util/regular-file.ts'

export interface OpenStoreOptions {
  gcsEndpoint?: string
  /** Retry policy of the client (GCS: default gcs-client.ts DEFAULT_RETRY; S3 uses maxRetries only). */
  retry?: Partial<RetryPolicy>
  /** GCS and S3: per-request timeout. */
  timeoutMs?: number
  logger?: Logger
  /** file:// only: the command only reads, so the directory must exist; nothing is created. */
  readOnly?: boolean
  /** s3:// only: endpoint, region, credentials, retries, timeout (default: the AWS environment). */
  s3?: Partial<Omit<S3StoreOptions, 'bucket' | 'prefix'>>
}

const EXPECTED = 'expected file:///absolute/path, gs://bucket[/prefix] or s3://bucket[/prefix]'
/** GCS bucket names: 3-63 chars (222 with dots) of lowercase letters, digits, `-`, `_`, `.`. */
const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/

export async function openStore(url: string, opts: OpenStoreOptions = {}): Promise<ObjectStore> {
  const bad = (why: string) => new InvalidArgumentError(`storage URL ${JSON.stringify(url)}: ${why}; ${EXPECTED}`)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw bad('not a URL')
  }
  if (parsed.protocol === 'file:') return openFs(url, parsed, bad, opts)
  if (parsed.protocol === 'gs:') {
    const bucket = parsed.hostname
    if (!BUCKET_RE.test(bucket) || (!bucket.includes('.') && bucket.length > 63)) {
      throw bad(`invalid bucket name ${JSON.stringify(bucket)}`)
    }
    if (parsed.search !== '' || parsed.hash !== '' || parsed.port !== '' || parsed.username !== '') {
      throw bad('port, credentials, query and fragment are not allowed')
    }
    const prefix = decodeURIComponent(parsed.pathname).replace(/^\/+|\/+$/g, '')
    return new GcsStore({
      bucket,
      prefix,
      endpoint: opts.gcsEndpoint,
      retry: opts.retry,
      timeoutMs: opts.timeoutMs,
      logger: opts.logger,
    })
  }
  if (parsed.protocol === 's3:') return openS3(parsed, bad, opts)
  throw bad(`unsupported scheme ${JSON.stringify(parsed.protocol)}`)
}

/** S3 bucket names: 3-63 chars of lowercase letters, digits, `-` and `.`, starting and ending alphanumeric. */
const S3_BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/

/** `s3://bucket[/prefix]`; endpoint, region and credentials come from the AWS environment (s3-client.ts). */
function openS3(parsed: URL, bad: (why: string) => Error, opts: OpenStoreOptions): ObjectStore {
  const bucket = parsed.hostname
  if (!S3_BUCKET_RE.test(bucket)) throw bad(`invalid bucket name ${JSON.stringify(bucket)}`)
  if (parsed.search !== '' || parsed.hash !== '' || parsed.port !== '' || parsed.username !== '') {
    throw bad('port, credentials, query and fragment are not allowed (the endpoint comes from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)')
  }
  const prefix = decodeURIComponent(parsed.pathname).replace(/^\/+|\/+$/g, '')
  return new S3Store({ logger: opts.logger, timeoutMs: opts.timeoutMs, retry: opts.retry, ...opts.s3, bucket, prefix })
}

/**
 * `file:///absolute/path` only: `file:store3` or `file://store3` would silently mean `/store3`
 * (a relative-looking name resolved at the filesystem root), so both are refused with the URL meant.
 */
async function openFs(url: string, parsed: URL, bad: (why: string) => Error, opts: OpenStoreOptions): Promise<ObjectStore> {
  const rest = url.replace(/^file:(\/\/)?/i, '')
  const hint = `did you mean file://${resolvePath(rest)}?`
  if (!/^file:\/\//i.test(url)) throw bad(`a relative path after "file:"; ${hint}`)
  if (parsed.host !== '') throw bad(`file URLs with a host (${parsed.host}) are not supported; ${hint}`)
  if (parsed.search !== '' || parsed.hash !== '') throw bad('query and fragment are not allowed')
  const root = fileURLToPath(parsed)
  const pseudo = await pseudoFsOf(root)
  if (pseudo) throw bad(`${root} is on the kernel's ${pseudo} filesystem, where nothing can be stored`)
  return FsStore.open(root, { create: !opts.readOnly })
}
