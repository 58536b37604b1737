/**
 * ObjectStore on Amazon S3 or an S3-compatible server (MinIO, moto, Ceph...): `s3://bucket[/prefix]`.
 * What every bucket store does (the prefix, create-only puts, ranged reads, listing) is in
 * bucket-store.ts; SDK calls live in s3-client.ts (endpoint, region and credentials from the usual AWS
 * environment); multipart uploads in s3-upload.ts.
 */
import type { Logger } from '../obs/log.ts'
import { BucketStore } from './bucket-store.ts'
import { S3Api, type S3ClientOptions } from './s3-client.ts'
import { S3Upload } from './s3-upload.ts'
import type { CleanupOptions, MultipartUpload } from './store.ts'
import { mapLimit } from './upload-state.ts'

export interface S3StoreOptions extends S3ClientOptions {
  /** Key prefix inside the bucket, without leading or trailing `/`. */
  prefix?: string
  logger?: Logger
}

/** Cleanup calls run concurrently; enough to hide latency, not a flood. */
const CONCURRENCY = 8

export class S3Store extends BucketStore {
  private readonly api: S3Api

  constructor(opts: S3StoreOptions) {
    const api = new S3Api(opts)
    super({ scheme: 's3', bucket: opts.bucket, prefix: opts.prefix, logger: opts.logger, component: 's3-store' }, api)
    this.api = api
  }

  startUpload(name: string, opts: { metadata?: Record<string, string> } = {}): MultipartUpload {
    return new S3Upload(this.api, name, this.full(name), opts.metadata ?? {}, this.log)
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
}
