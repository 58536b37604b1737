/**
 * What the cloud stores (GCS, S3) share: a bucket with an optional key prefix (`{scheme}://bucket[/prefix]`),
 * prepended to every name and stripped from list results, so one bucket can hold several stores; a
 * create-only put that recovers a retried write which had landed (create-only.ts); exact ranged reads
 * (ranged-read.ts). Each backend gives its client's calls on full keys (`BucketCalls`) and adds what
 * differs: multipart uploads, cleanup of abandoned ones, closing its client.
 */
import { type Logger, silentLogger } from '../obs/log.ts'
import { storedIsSame } from './create-only.ts'
import { readExactRange } from './ranged-read.ts'
import { checkName, type CleanupOptions, type GetOptions, type MultipartUpload, ObjectExistsError, type ObjectStat, type ObjectStore, type PutOptions } from './store.ts'

/** A backend client's calls on full keys (the prefix already applied); S3's client has exactly these. */
export interface BucketCalls {
  /** The key's URL, for error messages. */
  url(key: string): string
  /** Create-only: ObjectExistsError when the key exists. */
  put(key: string, data: Uint8Array, opts: { metadata?: Record<string, string>; signal?: AbortSignal; createOnly: true }): Promise<void>
  get(key: string, range: { start: number; end: number } | undefined, limit: number, signal?: AbortSignal): Promise<Uint8Array>
  head(key: string, signal?: AbortSignal): Promise<ObjectStat | null>
  delete(key: string, signal?: AbortSignal): Promise<void>
  /** The keys of the store's objects under `prefix` (an upload's temporaries left out). */
  list(prefix: string, signal?: AbortSignal): Promise<string[]>
  bucketExists(): Promise<boolean>
}

export interface BucketStoreSettings {
  /** URL scheme: `gs` or `s3`. */
  readonly scheme: string
  readonly bucket: string
  /** Object-name prefix inside the bucket; leading and trailing `/` are dropped. */
  readonly prefix?: string
  readonly logger?: Logger
  /** The logger's component name. */
  readonly component: string
}

export abstract class BucketStore implements ObjectStore {
  readonly url: string
  /** `''` or `some/prefix/`. */
  protected readonly prefix: string
  protected readonly log: Logger
  private readonly calls: BucketCalls
  private readonly label: string

  protected constructor(settings: BucketStoreSettings, calls: BucketCalls) {
    const prefix = (settings.prefix ?? '').replace(/^\/+|\/+$/g, '')
    if (prefix !== '') checkName(prefix)
    this.prefix = prefix === '' ? '' : `${prefix}/`
    this.url = `${settings.scheme}://${settings.bucket}${prefix === '' ? '' : `/${prefix}`}`
    this.log = (settings.logger ?? silentLogger).child({ component: settings.component, bucket: settings.bucket })
    this.calls = calls
    this.label = settings.component.replace(/-store$/, '')
  }

  abstract startUpload(name: string, opts?: { metadata?: Record<string, string> }): MultipartUpload
  abstract cleanupStaleUploads(opts: CleanupOptions): Promise<number>
  abstract close(): Promise<void>

  async put(name: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    try {
      await this.calls.put(this.full(name), data, { metadata: opts.metadata, signal: opts.signal, createOnly: true })
    } catch (err) {
      // A retry of a write whose first attempt landed: the object there is ours (create-only.ts).
      if (err instanceof ObjectExistsError && (await storedIsSame(this, name, data, opts.metadata, opts.signal))) return
      throw err
    }
  }

  async getRange(name: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const full = this.full(name)
    const src = {
      read: (range: { start: number; end: number }, limit: number, s?: AbortSignal) => this.calls.get(full, range, limit, s),
      stat: () => this.stat(name, signal),
      what: `${this.label} getRange ${this.calls.url(full)}`,
    }
    return readExactRange(src, name, offset, length, signal)
  }

  async get(name: string, opts: GetOptions = {}): Promise<Uint8Array> {
    return this.calls.get(this.full(name), undefined, opts.maxBytes ?? Number.POSITIVE_INFINITY, opts.signal)
  }

  async stat(name: string, signal?: AbortSignal): Promise<ObjectStat | null> {
    return this.calls.head(this.full(name), signal)
  }

  async exists(name: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.stat(name, signal)) !== null
  }

  /** Whether the bucket exists, so a missing bucket is reported as one rather than as a missing object. */
  bucketExists(): Promise<boolean> {
    return this.calls.bucketExists()
  }

  async delete(name: string, signal?: AbortSignal): Promise<void> {
    await this.calls.delete(this.full(name), signal)
  }

  async list(prefix: string, signal?: AbortSignal): Promise<string[]> {
    const keys = await this.calls.list(this.prefix + prefix, signal)
    return keys.map((k) => k.slice(this.prefix.length)).sort()
  }

  /** The full key of `name` (checked). */
  protected full(name: string): string {
    checkName(name)
    return this.prefix + name
  }
}
