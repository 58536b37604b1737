/**
 * ObjectStore on Google Cloud Storage (or fake-gcs-server): `gs://bucket[/prefix]`. The prefix is
 * prepended to every name and stripped from list results, so one bucket can hold several stores.
 * SDK calls live in gcs-client.ts; multipart uploads in gcs-upload.ts.
 */
import { LimitError } from '../format/errors.ts'
import { type Logger, silentLogger } from '../obs/log.ts'
import { GcsClient, type GcsClientOptions } from './gcs-client.ts'
import { GcsUpload, TEMPORARY_RE } from './gcs-upload.ts'
import {
  type CleanupOptions,
  checkName,
  checkRange,
  type GetOptions,
  type MultipartUpload,
  NotFoundError,
  ObjectRangeError,
  type ObjectStat,
  type ObjectStore,
  type PutOptions,
  StorageError,
} from './store.ts'
import { mapLimit } from './upload-state.ts'

export interface GcsStoreOptions extends GcsClientOptions {
  /** Object-name prefix inside the bucket, without leading or trailing `/`. */
  prefix?: string
  logger?: Logger
}

export class GcsStore implements ObjectStore {
  readonly url: string
  private readonly client: GcsClient
  /** `''` or `some/prefix/`. */
  private readonly prefix: string
  private readonly log: Logger

  constructor(opts: GcsStoreOptions) {
    const prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '')
    if (prefix !== '') checkName(prefix)
    this.prefix = prefix === '' ? '' : `${prefix}/`
    this.url = `gs://${opts.bucket}${prefix === '' ? '' : `/${prefix}`}`
    this.client = new GcsClient(opts)
    this.log = (opts.logger ?? silentLogger).child({ component: 'gcs-store', bucket: opts.bucket })
  }

  async put(name: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    await this.client.upload(this.full(name), data, { metadata: opts.metadata, signal: opts.signal, createOnly: true })
  }

  startUpload(name: string, opts: { metadata?: Record<string, string> } = {}): MultipartUpload {
    return new GcsUpload(this.client, name, this.full(name), opts.metadata ?? {}, this.log)
  }

  async getRange(name: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkRange(offset, length)
    const full = this.full(name)
    if (length === 0) return this.emptyRange(name, offset, signal)
    let bytes: Uint8Array
    try {
      bytes = await this.client.read(full, { start: offset, end: offset + length - 1 }, length, signal)
    } catch (err) {
      if (err instanceof StorageError && err.status === 416) throw new ObjectRangeError(name, offset, length)
      if (err instanceof LimitError) {
        throw new StorageError(`gcs getRange ${this.client.url(full)}: server ignored the Range header`, {
          retryable: false,
        })
      }
      throw err
    }
    // GCS clips a range that runs past the end; the contract wants exactly `length` bytes or an error.
    if (bytes.byteLength !== length) throw new ObjectRangeError(name, offset, length, offset + bytes.byteLength)
    return bytes
  }

  async get(name: string, opts: GetOptions = {}): Promise<Uint8Array> {
    return this.client.read(this.full(name), undefined, opts.maxBytes ?? Number.POSITIVE_INFINITY, opts.signal)
  }

  async stat(name: string): Promise<ObjectStat | null> {
    const info = await this.client.stat(this.full(name))
    return info === null ? null : { size: info.size, metadata: info.metadata }
  }

  async exists(name: string): Promise<boolean> {
    return (await this.stat(name)) !== null
  }

  bucketExists(): Promise<boolean> {
    return this.client.bucketExists()
  }

  async delete(name: string): Promise<void> {
    await this.client.delete(this.full(name))
  }

  async list(prefix: string): Promise<string[]> {
    const objects = await this.client.list(this.prefix + prefix)
    return objects
      .map((o) => o.name)
      .filter((n) => !TEMPORARY_RE.test(n))
      .map((n) => n.slice(this.prefix.length))
      .sort()
  }

  /**
   * Deletes the temporaries of uploads whose newest temporary is older than `olderThanMs`: judged per
   * upload, so a long upload that is still adding parts keeps its early ones.
   */
  async cleanupStaleUploads(opts: CleanupOptions): Promise<number> {
    const cutoff = Date.now() - opts.olderThanMs
    const uploads = new Map<string, { newest: number; names: string[] }>()
    for (const o of await this.client.list(this.prefix + (opts.prefix ?? ''))) {
      if (!TEMPORARY_RE.test(o.name)) continue
      const id = o.name.slice(0, o.name.lastIndexOf('/'))
      const u = uploads.get(id) ?? { newest: 0, names: [] }
      u.newest = Math.max(u.newest, o.created)
      u.names.push(o.name)
      uploads.set(id, u)
    }
    const stale = [...uploads.values()].filter((u) => u.newest <= cutoff).flatMap((u) => u.names)
    await mapLimit(stale, 8, (name) => this.client.delete(name))
    if (stale.length > 0) this.log.info({ removed: stale.length }, 'removed temporaries of abandoned uploads')
    return stale.length
  }

  async close(): Promise<void> {}

  private full(name: string): string {
    checkName(name)
    return this.prefix + name
  }

  /** A zero-length range needs no download, but must still fail for a missing object or a bad offset. */
  private async emptyRange(name: string, offset: number, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted()
    const st = await this.stat(name)
    if (st === null) throw new NotFoundError(name)
    if (offset > st.size) throw new ObjectRangeError(name, offset, 0, st.size)
    return new Uint8Array(0)
  }
}
