/**
 * Pause on this node (issue 6): answer at once, then in the background frame the build locally, serve
 * it to peers as a pending build, and upload it. The local geometry (codec/frame size of the frames
 * peers are served) may differ from the upload's; when they match, the upload sends the local frames
 * byte for byte instead of compressing twice.
 *
 * The final header is derived from the parent's FINAL header in storage (waiting for it when the
 * parent is itself still pending elsewhere), never from bytes a peer served.
 */
import { copyFile, open } from 'node:fs/promises'
import { join } from 'node:path'
import { type CompressionConfig, type CompressionSettings, resolveCompression } from '../config/compression.ts'
import { InvalidArgumentError, SnapswarmError } from '../format/errors.ts'
import { FrameTable } from '../format/frame-table.ts'
import { type BuildInfo, type Header, encodeHeader } from '../format/header.ts'
import { layerHeader, singleLayerHeader } from '../format/mapping.ts'
import { type BuildId, type FileKind, DEFAULT_BLOCK_SIZE, FILE_KINDS, codecSuffix, storageName } from '../format/types.ts'
import { isBuildId } from '../format/uuid.ts'
import type { Logger } from '../obs/log.ts'
import { type Counter, counter, createRegistry, type Registry } from '../obs/metrics.ts'
import { frameFile } from '../pack/framer.ts'
import type { ObjectStore } from '../storage/store.ts'
import { headerObjectName } from '../read/open.ts'
import { dataObjectName } from '../read/source.ts'
import { type ByteRange, checkDirty, uploadDataFile, uploadPrepacked } from '../upload/build-upload.ts'
import type { RateLimiter } from '../upload/rate-limit.ts'
import type { LocalBuild, LocalBuilds, PauseRequest } from './local-builds.ts'

export interface PauseDeps {
  readonly store: ObjectStore
  readonly builds: LocalBuilds
  readonly compression?: CompressionConfig
  /** Codec of the frames served to peers while pending; 'upload' = the same geometry as the upload. */
  readonly pendingCodec: 'upload' | 'none' | 'lz4' | 'zstd'
  readonly limiter: RateLimiter
  /** The header of a parent build as this node can see it now (local, storage, or a peer's pending one). */
  readonly parentHeader: (id: BuildId, kind: FileKind, signal: AbortSignal) => Promise<Header>
  /** Waits (bounded) until a build's final header is in storage; throws if it never appears or failed. */
  readonly finalHeader: (id: BuildId, kind: FileKind, signal: AbortSignal) => Promise<Header>
  readonly onState: (b: LocalBuild) => void
  readonly log: Logger
  readonly registry?: Registry
}

export class BuildConflictError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_BUILD_EXISTS', message)
  }
}

/** Validate the JSON body of `POST /v1/builds/{id}`. */
export function parsePauseRequest(body: unknown): PauseRequest {
  const b = (body ?? {}) as Record<string, unknown>
  const allowed = new Set(['parent', 'useCase', 'files', 'dirty'])
  for (const k of Object.keys(b)) if (!allowed.has(k)) throw new InvalidArgumentError(`unknown field '${k}' in pause request`)
  const parent = b.parent ?? null
  if (parent !== null && !isBuildId(parent)) throw new InvalidArgumentError(`parent: expected a UUID or null, found ${JSON.stringify(parent)}`)
  const useCase = b.useCase ?? 'pause'
  if (useCase !== 'pause' && useCase !== 'build') throw new InvalidArgumentError(`useCase: expected pause|build, found ${JSON.stringify(useCase)}`)
  const files = (b.files ?? {}) as Record<string, unknown>
  for (const [k, v] of Object.entries(files)) {
    if (!['memfile', 'rootfs', 'snapfile', 'metadata'].includes(k)) throw new InvalidArgumentError(`files: unknown file '${k}'`)
    if (typeof v !== 'string' || !v.startsWith('/')) throw new InvalidArgumentError(`files.${k}: expected an absolute path, found ${JSON.stringify(v)}`)
  }
  if (!files.memfile && !files.rootfs) throw new InvalidArgumentError('files: a build needs at least one of memfile, rootfs')
  const dirty = (b.dirty ?? {}) as Record<string, unknown>
  for (const [k, v] of Object.entries(dirty)) {
    if (k !== 'memfile' && k !== 'rootfs') throw new InvalidArgumentError(`dirty: unknown file '${k}'`)
    if (!Array.isArray(v) || !v.every((r) => Array.isArray(r) && r.length === 2 && r.every((n) => Number.isSafeInteger(n) && n >= 0))) {
      throw new InvalidArgumentError(`dirty.${k}: expected [[start, end], ...] byte ranges`)
    }
  }
  if (parent === null && Object.keys(dirty).length > 0) throw new InvalidArgumentError('dirty: needs a parent')
  return { parent: parent as BuildId | null, useCase, files: files as PauseRequest['files'], dirty: dirty as PauseRequest['dirty'] }
}

export class PauseManager {
  private readonly deps: PauseDeps
  private readonly running = new Map<BuildId, { abort: AbortController; done: Promise<void> }>()
  /** Ids between "accepted" and "registered": two concurrent POSTs of one id must not both win. */
  private readonly reserved = new Set<BuildId>()

  private readonly uploadedBytes: Counter
  private readonly uploads: Counter<'result'>

  constructor(deps: PauseDeps) {
    this.deps = deps
    const reg = deps.registry ?? createRegistry()
    this.uploadedBytes = counter(reg, 'snapswarm_upload_bytes_total', 'Bytes of build data acknowledged by object storage')
    this.uploads = counter(reg, 'snapswarm_uploads_total', 'Build uploads by result', ['result']) as Counter<'result'>
  }

  /** Register the build and start its background work; resolves once it is recorded (the 202). */
  async pause(id: BuildId, req: PauseRequest): Promise<LocalBuild> {
    if (this.deps.builds.get(id) || this.reserved.has(id)) throw new BuildConflictError(`build ${id} is already known to this node`)
    this.reserved.add(id)
    try {
      for (const kind of FILE_KINDS) {
        if (req.files[kind] && (await this.deps.store.exists(headerObjectName(id, kind)))) throw new BuildConflictError(`build ${id} is already complete in storage`)
      }
      const build = await this.deps.builds.add(id, req)
      this.start(build)
      return build
    } finally {
      this.reserved.delete(id)
    }
  }

  /** Resume a build a previous run of this node left unfinished (its source files must still exist). */
  async resume(build: LocalBuild): Promise<void> {
    // The previous run may have died after its last header write but before recording it: a build
    // whose headers are all in storage is complete, not something to upload twice.
    const kinds = FILE_KINDS.filter((k) => build.request.files[k])
    const stored = await Promise.all(kinds.map((k) => this.deps.store.exists(headerObjectName(build.id, k)).catch(() => false)))
    if (kinds.length > 0 && stored.every(Boolean)) {
      await this.deps.builds.setState(build, 'uploaded')
      this.deps.onState(build)
      return
    }
    this.start(build)
  }

  async stop(): Promise<void> {
    for (const r of this.running.values()) r.abort.abort(new SnapswarmError('ERR_SHUTDOWN', 'node shutting down'))
    await Promise.allSettled([...this.running.values()].map((r) => r.done))
  }

  private start(build: LocalBuild): void {
    const abort = new AbortController()
    const done = this.run(build, abort.signal)
      .catch((err) => this.deps.log.error({ err, buildId: build.id }, 'pause bookkeeping failed'))
      .finally(() => this.running.delete(build.id))
    this.running.set(build.id, { abort, done })
  }

  private async run(build: LocalBuild, signal: AbortSignal): Promise<void> {
    const log = this.deps.log.child({ buildId: build.id })
    try {
      await this.frameLocally(build, signal)
      await this.deps.builds.setState(build, 'pending')
      this.deps.onState(build)
      log.info('pending: serving to peers, uploading')
      await this.upload(build, signal)
      this.uploads.inc({ result: 'ok' })
      await this.deps.builds.setState(build, 'uploaded')
      log.info('uploaded')
    } catch (err) {
      if (signal.aborted) {
        // Shutdown mid-upload: the record stays "pending" so a restart resumes (or fails) it.
        log.warn({ err: (err as Error).message }, 'upload interrupted by shutdown')
        return
      }
      log.error({ err }, 'pause failed')
      this.uploads.inc({ result: 'failed' })
      await this.deps.builds.setState(build, 'failed', (err as Error).message).catch((e) => log.error({ err: e }, 'recording the failure failed'))
    }
    this.deps.onState(build)
  }

  private settings(build: LocalBuild, kind: FileKind, blockSize: number): { upload: CompressionSettings; local: CompressionSettings } {
    const upload = resolveCompression(this.deps.compression, kind, build.request.useCase, blockSize)
    const codec = this.deps.pendingCodec === 'upload' ? upload.codec : this.deps.pendingCodec
    return { upload, local: { ...upload, codec } }
  }

  /** Frame each data file into the build's directory and derive its pending header. */
  private async frameLocally(build: LocalBuild, signal: AbortSignal): Promise<void> {
    const req = build.request
    for (const kind of FILE_KINDS) {
      const src = req.files[kind]
      if (!src) continue
      const parent = req.parent ? await this.deps.parentHeader(req.parent, kind, signal) : null
      const blockSize = parent?.blockSize ?? DEFAULT_BLOCK_SIZE[kind]
      const { local } = this.settings(build, kind, blockSize)
      const dataPath = join(this.deps.builds.buildDir(build.id), storageName(kind) + codecSuffix(local.codec))
      const info = await frameToFile(build.id, src, dataPath, local, signal)
      const dirty = parent ? checkDirty(toRanges(req.dirty[kind]), info.fileSize, parent, kind) : undefined
      const header = parent
        ? layerHeader(parent, { buildId: build.id, dirty: dirty!, info, incomplete: true })
        : singleLayerHeader({ buildId: build.id, blockSize, info, incomplete: true })
      build.files.set(kind, { dataPath, header, info })
    }
    for (const blob of ['snapfile', 'metadata'] as const) {
      const src = req.files[blob]
      if (src) await copyFile(src, join(this.deps.builds.buildDir(build.id), blob === 'metadata' ? 'metadata.json' : 'snapfile'))
    }
  }

  private async upload(build: LocalBuild, signal: AbortSignal): Promise<void> {
    const { store, limiter } = this.deps
    const throttle = limiter.unlimited ? undefined : (n: number) => limiter.take(n, signal)
    const headers = new Map<FileKind, Header>()
    const written: string[] = []
    try {
      await this.uploadObjects(build, signal, throttle, headers, written)
    } catch (err) {
      // Nothing of a failed attempt stays in storage: no half build, and a header never outlives its
      // data (DESIGN §3). Best effort: the storage that failed may refuse the deletes too.
      await Promise.allSettled(written.map((n) => store.delete(n)))
      throw err
    }
  }

  private async uploadObjects(
    build: LocalBuild,
    signal: AbortSignal,
    throttle: ((n: number) => Promise<void>) | undefined,
    headers: Map<FileKind, Header>,
    written: string[],
  ): Promise<void> {
    const { store } = this.deps
    let acked = 0
    const onProgress = (p: { uploaded: number }) => {
      this.uploadedBytes.inc(Math.max(0, p.uploaded - acked))
      acked = p.uploaded
    }
    for (const [kind, local] of build.files) {
      // A child of a pending parent waits for the parent's final header: the child's final header
      // must carry the ancestors' final frame tables (DESIGN §8).
      const parent = build.request.parent ? await this.deps.finalHeader(build.request.parent, kind, signal) : null
      const blockSize = parent?.blockSize ?? local.header.blockSize
      const { upload } = this.settings(build, kind, blockSize)
      acked = 0
      const localInfo = local.info
      let info: BuildInfo
      if (sameGeometry(localInfo.frames, upload)) {
        const fh = await open(local.dataPath, 'r')
        try {
          await uploadPrepacked({ store, buildId: build.id, kind, dataFile: fh, info: localInfo, settings: upload, signal, throttle, onProgress })
        } finally {
          await fh.close()
        }
        info = localInfo
        written.push(dataObjectName(build.id, kind, localInfo.frames.codec))
      } else {
        const fh = await open(build.request.files[kind]!, 'r')
        try {
          info = await uploadDataFile({ store, buildId: build.id, kind, file: fh, settings: upload, signal, throttle, onProgress })
          written.push(dataObjectName(build.id, kind, upload.codec))
        } finally {
          await fh.close()
        }
        if (!Buffer.from(info.sha256).equals(Buffer.from(localInfo.sha256))) {
          throw new SnapswarmError('ERR_SOURCE_CHANGED', `${build.request.files[kind]} changed while the build was pending (SHA-256 differs)`)
        }
      }
      const dirty = parent ? checkDirty(toRanges(build.request.dirty[kind]), info.fileSize, parent, kind) : undefined
      headers.set(kind, parent ? layerHeader(parent, { buildId: build.id, dirty: dirty!, info }) : singleLayerHeader({ buildId: build.id, blockSize, info }))
    }
    for (const blob of ['snapfile', 'metadata.json']) {
      const path = join(this.deps.builds.buildDir(build.id), blob === 'metadata.json' ? 'metadata.json' : 'snapfile')
      const src = build.request.files[blob === 'metadata.json' ? 'metadata' : 'snapfile']
      if (!src) continue
      const fh = await open(path, 'r')
      try {
        await store.put(`${build.id}/${blob}`, await fh.readFile(), { signal })
        written.push(`${build.id}/${blob}`)
      } finally {
        await fh.close()
      }
    }
    signal.throwIfAborted()
    // Headers last: their presence in storage means "complete" (DESIGN §3).
    for (const [kind, header] of headers) {
      written.push(headerObjectName(build.id, kind))
      await store.put(headerObjectName(build.id, kind), encodeHeader(header), { signal })
    }
  }
}

async function frameToFile(buildId: BuildId, src: string, dataPath: string, settings: CompressionSettings, signal: AbortSignal): Promise<BuildInfo> {
  const input = await open(src, 'r')
  const out = await open(dataPath, 'w').catch(async (err) => {
    await input.close()
    throw err
  })
  try {
    let pos = 0
    const framed = await frameFile(input, { ...settings, signal }, async (stored) => {
      await out.write(stored, 0, stored.byteLength, pos)
      pos += stored.byteLength
    })
    await out.sync()
    return { buildId, fileSize: framed.size, sha256: framed.sha256, frames: settings.codec === 'none' ? FrameTable.fromSizes('none', []) : framed.table }
  } finally {
    await out.close()
    await input.close()
  }
}

function sameGeometry(table: FrameTable, s: CompressionSettings): boolean {
  if (table.codec !== s.codec) return false
  if (s.codec === 'none') return true
  // Every frame but the last has exactly frameSize uncompressed bytes: the same cut as a re-frame.
  return table.frames.every((f, i) => f.sizeU === s.frameSize || i === table.frames.length - 1)
}

function toRanges(r: [number, number][] | undefined): ByteRange[] | undefined {
  return r?.map(([start, end]) => ({ start, end }))
}
