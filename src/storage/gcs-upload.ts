/**
 * Multipart upload on GCS without the XML multipart API (fake-gcs-server does not serve it): each part
 * is a temporary object `{name}.parts/{uploadId}/{partNumber:05}`, complete composes them into the
 * final object with its metadata, then deletes the temporaries; abort deletes every object under the
 * upload's prefix, so it also cleans what an earlier, crashed attempt of the same upload left.
 *
 * Compose takes at most 32 sources per call, so more parts are composed in a tree: groups of 32 into
 * intermediates `{prefix}c{level}-{index:05}`, level by level, until one call can produce the target.
 *
 * The target is created only if absent (ObjectExistsError otherwise, the parts stay for abort): the
 * last compose carries `ifGenerationMatch=0`, atomic on GCS. fake-gcs-server ignores that precondition
 * on compose, so an existing target is also looked for just before; against the emulator two uploads
 * racing for one name can therefore both "win" the last step, which the build upload's claim object
 * (a create-only put, honoured there) rules out for build objects.
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from '../obs/log.ts'
import type { GcsClient, GcsObjectInfo } from './gcs-client.ts'
import { abortReason, raceAbort } from '../util/abort.ts'
import { type MultipartUpload, ObjectExistsError, UploadStateError } from './store.ts'
import { mapLimit, type PartInfo, UploadTracker } from './upload-state.ts'

/** GCS limit on sources per compose call. */
export const COMPOSE_MAX_SOURCES = 32
/** Compose and delete calls run concurrently within one upload; enough to hide latency, not a flood. */
const CONCURRENCY = 8

/** Matches the objects of upload temporaries (parts and compose intermediates), whatever their target. */
export const TEMPORARY_RE = /\.parts\/[0-9a-f-]{36}\/[^/]+$/

export class GcsUpload implements MultipartUpload {
  readonly name: string
  private readonly client: GcsClient
  /** Full object name in the bucket (store prefix included). */
  private readonly target: string
  private readonly tempPrefix: string
  private readonly metadata: Record<string, string>
  private readonly log: Logger
  private readonly tracker: UploadTracker

  constructor(client: GcsClient, name: string, target: string, metadata: Record<string, string>, log: Logger) {
    this.client = client
    this.name = name
    this.target = target
    this.tempPrefix = `${target}.parts/${randomUUID()}/`
    this.metadata = metadata
    this.log = log
    this.tracker = new UploadTracker(name)
  }

  uploadPart(partNumber: number, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    // The tracked write is the request itself, not the signal race: abort() must wait for it to land.
    const write = this.tracker.writePart(partNumber, data.byteLength, () =>
      this.client.upload(this.partName(partNumber), data),
    )
    return raceAbort(write, signal)
  }

  complete(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    return raceAbort(
      this.tracker.runComplete((parts) => this.assemble(parts, signal)),
      signal,
    )
  }

  async abort(): Promise<void> {
    if (!(await this.tracker.beginAbort())) return
    await this.deleteTemporaries()
  }

  private partName(partNumber: number): string {
    return `${this.tempPrefix}${String(partNumber).padStart(5, '0')}`
  }

  private async assemble(parts: PartInfo[], signal?: AbortSignal): Promise<void> {
    if (parts.length === 0) {
      await this.client.upload(this.target, new Uint8Array(0), { metadata: this.metadata, createOnly: true })
      return
    }
    let sources = await this.storedParts(parts)
    for (let level = 0; sources.length > COMPOSE_MAX_SOURCES; level++) {
      signal?.throwIfAborted()
      const groups = chunk(sources, COMPOSE_MAX_SOURCES)
      sources = await mapLimit(groups, CONCURRENCY, async (group, i) => {
        const name = `${this.tempPrefix}c${level}-${String(i).padStart(5, '0')}`
        return { name, generation: await this.client.compose(group, name) }
      })
    }
    signal?.throwIfAborted()
    if ((await this.client.stat(this.target)) !== null) throw new ObjectExistsError(this.client.url(this.target))
    await this.client.compose(sources, this.target, this.metadata, true)
    try {
      await this.deleteTemporaries()
    } catch (err) {
      // The object is complete: failing now would make the caller redo a finished upload. The leftovers
      // are found by their name pattern (cleanupStaleUploads).
      this.log.warn({ err, object: this.target }, 'multipart upload: temporaries left after complete')
    }
  }

  /**
   * The stored part objects, checked against what this process uploaded: a missing or wrong-sized part
   * is a clear error here, instead of compose failing (fake-gcs-server answers a missing source with
   * a retryable 500, real GCS with 404). Their generations pin compose to exactly these bytes.
   */
  private async storedParts(parts: PartInfo[]): Promise<{ name: string; generation: string }[]> {
    const stored = new Map<string, GcsObjectInfo>()
    for (const o of await this.client.list(this.tempPrefix)) stored.set(o.name, o)
    return parts.map((p) => {
      const o = stored.get(this.partName(p.partNumber))
      if (o === undefined || o.size !== p.size) {
        const found = o === undefined ? 'no object' : `${o.size} bytes`
        throw new UploadStateError(
          `complete ${this.client.url(this.target)}: part ${p.partNumber}: expected ${p.size} bytes, found ${found}`,
        )
      }
      return { name: o.name, generation: o.generation }
    })
  }

  private async deleteTemporaries(): Promise<void> {
    const objects = await this.client.list(this.tempPrefix)
    await mapLimit(objects, CONCURRENCY, (o) => this.client.delete(o.name))
  }
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}
