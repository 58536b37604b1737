/**
 * ObjectStore on Google Cloud Storage (or fake-gcs-server): `gs://bucket[/prefix]`. What every bucket
 * store does (the prefix, create-only puts, ranged reads, listing) is in bucket-store.ts; SDK calls
 * live in gcs-client.ts; multipart uploads in gcs-upload.ts.
 */
import type { Logger } from '../obs/log.ts'
import { BucketStore } from './bucket-store.ts'
import { GcsClient, type GcsClientOptions } from './gcs-client.ts'
import { GcsUpload, TEMPORARY_RE } from './gcs-upload.ts'
import type { CleanupOptions, MultipartUpload } from './store.ts'
import { mapLimit } from './upload-state.ts'

export interface GcsStoreOptions extends GcsClientOptions {
  /** Object-name prefix inside the bucket, without leading or trailing `/`. */
  prefix?: string
  logger?: Logger
}

export class GcsStore extends BucketStore {
  private readonly client: GcsClient

  constructor(opts: GcsStoreOptions) {
    const client = new GcsClient(opts)
    super(
      { scheme: 'gs', bucket: opts.bucket, prefix: opts.prefix, logger: opts.logger, component: 'gcs-store' },
      {
        url: (key) => client.url(key),
        put: (key, data, o) => client.upload(key, data, o),
        get: (key, range, limit, signal) => client.read(key, range, limit, signal),
        head: async (key, signal) => {
          const info = await client.stat(key, signal)
          return info === null ? null : { size: info.size, metadata: info.metadata }
        },
        delete: (key, signal) => client.delete(key, signal),
        // An upload's parts are temporary objects next to it: never listed as the store's objects.
        list: async (prefix, signal) => (await client.list(prefix, signal)).map((o) => o.name).filter((n) => !TEMPORARY_RE.test(n)),
        bucketExists: () => client.bucketExists(),
      },
    )
    this.client = client
  }

  startUpload(name: string, opts: { metadata?: Record<string, string> } = {}): MultipartUpload {
    return new GcsUpload(this.client, name, this.full(name), opts.metadata ?? {}, this.log)
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
}
