/**
 * ObjectStore on Google Cloud Storage (or fake-gcs-server): `gs://bucket[/prefix]`. The prefix is
 * prepended to every name and stripped from list results, so one bucket can hold several stores.
 * SDK calls live in gcs-client.ts; multipart uploads in gcs-upload.ts.
 */
import { type Logger, silentLogger } from '../obs/log.ts'
import { GcsClient, type GcsClientOptions } from './gcs-client.ts'
import { GcsUpload, TEMPORARY_RE } from './gcs-upload.ts'
import { storedIsSame } from './create-only.ts'
import { readExactRange } from './ranged-read.ts'
import {
  type CleanupOptions,
  checkName,
  type GetOptions,
  type MultipartUpload,
  ObjectExistsError,
  type ObjectStat,
  type ObjectStore,
  type PutOptions,
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
    try {
      await this.client.upload(this.full(name), data, { metadata: opts.metadata, signal: opts.signal, createOnly: true })
    } catch (err) {
      // A retry of a write whose first attempt landed: the object there is ours (create-only.ts).
      if (err instanceof ObjectExistsError && (await storedIsSame(this, name, data, opts.metadata, opts.signal))) return
      throw err
    }
  }

  startUpload(name: string, opts: { metadata?: Record<string, string> } = {}): MultipartUpload {
    return new GcsUpload(this.client, name, this.full(name), opts.metadata ?? {}, this.log)
  }

  async getRange(name: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const full = this.full(name)
    const src = {
      read: (range: { start: number; end: number }, limit: number, s?: AbortSignal) => this.client.read(full, range, limit, s),
      stat: () => this.stat(name, signal),
      what: `gcs getRange ${this.client.url(full)}`,
    }
    return readExactRange(src, name, offset, length, signal)
  }

  async get(name: string, opts: GetOptions = {}): Promise<Uint8Array> {
    return this.client.read(this.full(name), undefined, opts.maxBytes ?? Number.POSITIVE_INFINITY, opts.signal)
  }

  async stat(name: string, signal?: AbortSignal): Promise<ObjectStat | null> {
    const info = await this.client.stat(this.full(name), signal)
    return info === null ? null : { size: info.size, metadata: info.metadata }
  }

  async exists(name: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.stat(name, signal)) !== null
  }

  bucketExists(): Promise<boolean> {
    return this.client.bucketExists()
  }

  async delete(name: string, signal?: AbortSignal): Promise<void> {
    await this.client.delete(this.full(name), signal)
  }

  async list(prefix: string, signal?: AbortSignal): Promise<string[]> {
    const objects = await this.client.list(this.prefix + prefix, signal)
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
}
