/**
 * ObjectStore on Amazon S3 or an S3-compatible server (MinIO, moto, Ceph...): `s3://bucket[/prefix]`.
 * The prefix is prepended to every key and stripped from list results, so one bucket can hold several
 * stores. SDK calls live in s3-client.ts (endpoint, region and credentials from the usual AWS
 * environment); multipart uploads in s3-upload.ts.
 */
import { type Logger, silentLogger } from '../obs/log.ts'
import { storedIsSame } from './create-only.ts'
import { readExactRange } from './ranged-read.ts'
import { S3Api, type S3ClientOptions } from './s3-client.ts'
import { S3Upload } from './s3-upload.ts'
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

export interface S3StoreOptions extends S3ClientOptions {
  /** Key prefix inside the bucket, without leading or trailing `/`. */
  prefix?: string
  logger?: Logger
}

/** Cleanup calls run concurrently; enough to hide latency, not a flood. */
const CONCURRENCY = 8

export class S3Store implements ObjectStore {
  readonly url: string
  private readonly api: S3Api
  /** `''` or `some/prefix/`. */
  private readonly prefix: string
  private readonly log: Logger

  constructor(opts: S3StoreOptions) {
    const prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '')
    if (prefix !== '') checkName(prefix)
    this.prefix = prefix === '' ? '' : `${prefix}/`
    this.url = `s3://${opts.bucket}${prefix === '' ? '' : `/${prefix}`}`
    this.api = new S3Api(opts)
    this.log = (opts.logger ?? silentLogger).child({ component: 's3-store', bucket: opts.bucket })
  }

  async put(name: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    try {
      await this.api.put(this.full(name), data, { metadata: opts.metadata, signal: opts.signal, createOnly: true })
    } catch (err) {
      // A retry of a write whose first attempt landed: the object there is ours (create-only.ts).
      if (err instanceof ObjectExistsError && (await storedIsSame(this, name, data, opts.metadata, opts.signal))) return
      throw err
    }
  }

  startUpload(name: string, opts: { metadata?: Record<string, string> } = {}): MultipartUpload {
    return new S3Upload(this.api, name, this.full(name), opts.metadata ?? {}, this.log)
  }

  async getRange(name: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const full = this.full(name)
    const src = {
      read: (range: { start: number; end: number }, limit: number, s?: AbortSignal) => this.api.get(full, range, limit, s),
      stat: () => this.stat(name, signal),
      what: `s3 getRange ${this.api.url(full)}`,
    }
    return readExactRange(src, name, offset, length, signal)
  }

  async get(name: string, opts: GetOptions = {}): Promise<Uint8Array> {
    return this.api.get(this.full(name), undefined, opts.maxBytes ?? Number.POSITIVE_INFINITY, opts.signal)
  }

  async stat(name: string, signal?: AbortSignal): Promise<ObjectStat | null> {
    return this.api.head(this.full(name), signal)
  }

  async exists(name: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.stat(name, signal)) !== null
  }

  /** Whether the bucket exists, so a missing bucket is reported as one rather than as a missing object. */
  bucketExists(): Promise<boolean> {
    return this.api.bucketExists()
  }

  async delete(name: string, signal?: AbortSignal): Promise<void> {
    await this.api.delete(this.full(name), signal)
  }

  async list(prefix: string, signal?: AbortSignal): Promise<string[]> {
    const keys = await this.api.list(this.prefix + prefix, signal)
    return keys.map((k) => k.slice(this.prefix.length)).sort()
  }

  /**
   * Aborts multipart uploads that nobody completed nor aborted, judged per upload by its newest part
   * (or its start, without parts), so a long upload still adding parts keeps its early ones. Returns
   * how many uploads were removed.
   */
  async cleanupStaleUploads(opts: CleanupOptions): Promise<number> {
    const cutoff = Date.now() - opts.olderThanMs
    const candidates = (await this.api.listUploads(this.prefix + (opts.prefix ?? ''))).filter((u) => u.initiated <= cutoff)
    const stale = await mapLimit(candidates, CONCURRENCY, async (u) => (await this.api.newestPart(u.key, u.uploadId)) <= cutoff)
    const removed = candidates.filter((_, i) => stale[i])
    await mapLimit(removed, CONCURRENCY, (u) => this.api.abortMultipart(u.key, u.uploadId))
    if (removed.length > 0) this.log.info({ removed: removed.length }, 'aborted abandoned multipart uploads')
    return removed.length
  }

  async close(): Promise<void> {
    this.api.destroy()
  }

  private full(name: string): string {
    checkName(name)
    return this.prefix + name
  }
}
