/**
 * Multipart upload on S3 with the native API: the upload is created on S3 with the first part (so an
 * upload that never receives a part leaves nothing behind), parts go up concurrently as UploadPart
 * calls (the caller bounds how many at once), complete sends CompleteMultipartUpload with
 * `If-None-Match: *`, so the object appears atomically with its metadata only if the key is free
 * (ObjectExistsError otherwise, the upload stays open for abort), and abort sends
 * AbortMultipartUpload once every part still in flight has landed, so no part outlives it.
 *
 * S3 wants every part but the last to be at least 5 MiB (EntityTooSmall, an UploadStateError here);
 * build uploads use parts of 5 MiB or more. A zero-part upload is a create-only PutObject of no bytes.
 */
import type { Logger } from '../obs/log.ts'
import type { S3Api } from './s3-client.ts'
import { abortReason, raceAbort } from '../util/abort.ts'
import { type MultipartUpload, UploadStateError } from './store.ts'
import { type PartInfo, UploadTracker } from './upload-state.ts'

export class S3Upload implements MultipartUpload {
  readonly name: string
  private readonly api: S3Api
  /** Full key in the bucket (store prefix included). */
  private readonly key: string
  private readonly metadata: Record<string, string>
  private readonly log: Logger
  private readonly tracker: UploadTracker
  /** The S3 upload id, once the first part asked for it; reset when creating failed (a retry tries again). */
  private created: Promise<string> | undefined
  private readonly etags = new Map<number, string>()

  constructor(api: S3Api, name: string, key: string, metadata: Record<string, string>, log: Logger) {
    this.api = api
    this.name = name
    this.key = key
    this.metadata = metadata
    this.log = log
    this.tracker = new UploadTracker(name)
  }

  uploadPart(partNumber: number, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    // The tracked write is the request itself, not the signal race: abort() must wait for it to land.
    const write = this.tracker.writePart(partNumber, data.byteLength, async () => {
      const uploadId = await this.uploadId()
      this.etags.set(partNumber, await this.api.uploadPart(this.key, uploadId, partNumber, data))
    })
    return raceAbort(write, signal)
  }

  complete(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    return raceAbort(
      this.tracker.runComplete((parts) => this.assemble(parts)),
      signal,
    )
  }

  async abort(): Promise<void> {
    if (!(await this.tracker.beginAbort())) return
    const uploadId = await this.created?.catch(() => undefined)
    if (uploadId !== undefined) await this.api.abortMultipart(this.key, uploadId)
  }

  private uploadId(): Promise<string> {
    if (this.created === undefined) {
      const p = this.api.createMultipart(this.key, this.metadata)
      this.created = p
      p.catch(() => {
        if (this.created === p) this.created = undefined
      })
    }
    return this.created
  }

  private async assemble(parts: PartInfo[]): Promise<void> {
    if (parts.length === 0) {
      await this.api.put(this.key, new Uint8Array(0), { metadata: this.metadata, createOnly: true })
      await this.dropEmptyUpload()
      return
    }
    const uploadId = await this.uploadId()
    const list = parts.map((p) => {
      const etag = this.etags.get(p.partNumber)
      if (etag === undefined) throw new UploadStateError(`complete ${this.api.url(this.key)}: part ${p.partNumber}: expected an ETag, found none`)
      return { partNumber: p.partNumber, etag }
    })
    await this.api.completeMultipart(this.key, uploadId, list, true)
  }

  /** A zero-part upload whose id was created anyway (every part failed): the id is removed. */
  private async dropEmptyUpload(): Promise<void> {
    const uploadId = await this.created?.catch(() => undefined)
    if (uploadId === undefined) return
    try {
      await this.api.abortMultipart(this.key, uploadId)
    } catch (err) {
      // The object is complete; the empty upload is found by cleanupStaleUploads.
      this.log.warn({ err, object: this.key }, 'multipart upload: an empty upload was left after complete')
    }
  }
}
