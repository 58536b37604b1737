/**
 * Storage URLs → stores: `file:///absolute/path` (FsStore) and `gs://bucket[/prefix]` (GcsStore).
 * The GCS endpoint is `opts.gcsEndpoint` (`--gcs-endpoint`), else STORAGE_EMULATOR_HOST, else real GCS.
 */
import { fileURLToPath } from 'node:url'
import { InvalidArgumentError } from '../format/errors.ts'
import type { Logger } from '../obs/log.ts'
import { FsStore } from './fs-store.ts'
import type { RetryPolicy } from './gcs-client.ts'
import { GcsStore } from './gcs-store.ts'
import type { ObjectStore } from './store.ts'

export interface OpenStoreOptions {
  gcsEndpoint?: string
  /** GCS only: retry policy of the client (default gcs-client.ts DEFAULT_RETRY). */
  retry?: Partial<RetryPolicy>
  /** GCS only: per-request timeout. */
  timeoutMs?: number
  logger?: Logger
}

const EXPECTED = 'expected file:///absolute/path or gs://bucket[/prefix]'
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
  if (parsed.protocol === 'file:') {
    if (parsed.host !== '') throw bad(`file URLs with a host (${parsed.host}) are not supported`)
    if (parsed.search !== '' || parsed.hash !== '') throw bad('query and fragment are not allowed')
    return FsStore.open(fileURLToPath(parsed))
  }
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
      endpoint: opts.gcsEndpoint ?? process.env.STORAGE_EMULATOR_HOST,
      retry: opts.retry,
      timeoutMs: opts.timeoutMs,
      logger: opts.logger,
    })
  }
  throw bad(`unsupported scheme ${JSON.stringify(parsed.protocol)}`)
}
