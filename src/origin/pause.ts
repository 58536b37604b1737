/**
 * Pause on this node: check the input (src/origin/pause-input.ts) and record the build, answer at once,
 * then in the background frame the build locally, serve it to peers as a pending build, and upload
 * it. The local geometry (codec/frame size of the frames peers are served) may differ from the
 * upload's; when they match, the upload sends the local frames byte for byte instead of compressing
 * twice.
 *
 * One build id stands for one content: the pause record keeps the identity of every source file and
 * the SHA-256 of what was framed, and a restarted origin resumes only if its sources (and its local
 * copy, if it reuses it) still match; otherwise the build fails rather than being framed again from
 * other content.
 *
 * The final header is derived from the parent's FINAL header in storage (waiting for it when the
 * parent is itself still pending elsewhere), never from bytes a peer served.
 */
import { createHash } from 'node:crypto'
import { type FileHandle, open, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { type CompressionConfig, type CompressionSettings, resolveCompression } from '../config/compression.ts'
import { SnapswarmError } from '../errors.ts'
import { type ByteRange, FrameTable, MAX_FRAMES_PER_TABLE } from '../format/frame-table.ts'
import type { BuildInfo, Header } from '../format/header.ts'
import { type BlobKind, BLOB_KINDS, blobFileName, dataFileName, headerObjectName } from '../format/layout.ts'
import type { WriteVersion } from '../format/mapping.ts'
import { type BuildId, type FileKind, DEFAULT_BLOCK_SIZE, FILE_KINDS } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import { type Counter, counter, createRegistry, type Registry } from '../obs/metrics.ts'
import { frameFile, framedInfo } from '../framing/framer.ts'
import { MAX_PARTS, type ObjectStore } from '../storage/store.ts'
import { zeroBlockFor } from '../framing/holes.ts'
import { type FilePlan, type PreparedBuild, uploadBuild } from '../upload/build-upload.ts'
import { BuildExistsError, type BuildWriter, contentDigest, dropClaimOf, takeClaim } from '../upload/claim.ts'
import { SourceChangedError, type UploadProgress } from '../upload/data-upload.ts'
import { checkDirty, headerForFramed, holeBytes } from '../upload/layer-header.ts'
import type { RateLimiter } from '../upload/rate-limit.ts'
import { identityDiff, openRegularFile, readHandleFully, type RegularFile } from '../util/regular-file.ts'
import type { FramedRecord, LocalBuild, LocalBuilds, PauseRequest, SourceName } from './local-builds.ts'
import { INPUT_NAMES, type InputName, openPauseInputs, PauseInputs } from './pause-input.ts'

export { parsePauseRequest } from './pause-input.ts'

/** How long stop() waits for pauses to end after aborting them before it gives up on them. */
const STOP_WAIT_MS = 5000
/** How long a pause's answer waits for the parent's header to check the dirty ranges against it. */
const PARENT_CHECK_MS = 1000

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
  /** Why a real path may not be paused (the node's own files), or undefined. */
  readonly forbiddenPath?: (realPath: string) => string | undefined
  readonly onState: (b: LocalBuild) => void
  /** This node as a writer in build claims (`node:{peerId}`): a restart of it may finish its own upload. */
  readonly writer?: string
  /** Header version written when build entries are needed: 4 (default) or 5 (config `format.headerVersion`). */
  readonly headerVersion?: WriteVersion
  readonly log: Logger
  readonly registry?: Registry
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

  /**
   * Check the input, register the build and start its background work; resolves once it is recorded
   * (the 202). Bad input throws before the id is reserved; a failed record releases it.
   */
  async pause(id: BuildId, req: PauseRequest, trusted: ReadonlySet<string> = new Set()): Promise<LocalBuild> {
    this.refuseKnown(id)
    // `trusted`: real paths the node itself wrote for this pause (an overlay's diff), allowed inside the data dir.
    const forbidden = (real: string) => (trusted.has(real) ? undefined : this.deps.forbiddenPath?.(real))
    const inputs = await openPauseInputs(req, { maxDataBytes: (kind) => this.maxDataBytes(req, kind), forbidden })
    let started = false
    try {
      if (req.parent) await this.checkAgainstParent(req, inputs)
      this.refuseKnown(id)
      this.reserved.add(id)
      try {
        for (const kind of FILE_KINDS) {
          if (req.files[kind] && (await this.deps.store.exists(headerObjectName(id, kind)))) throw new BuildExistsError(id, 'expected no stored build, found its header in storage')
        }
        const sources = Object.fromEntries([...inputs.files].map(([name, f]) => [name, { path: f.path, identity: f.identity }]))
        const build = await this.deps.builds.add(id, req, sources)
        this.start(build, inputs)
        started = true
        return build
      } finally {
        this.reserved.delete(id)
      }
    } finally {
      if (!started) await inputs.close()
    }
  }

  /**
   * Pick up what a previous run left: finished builds are forgotten, unfinished ones resumed after
   * their sources are checked, and a record that cannot be trusted makes its build `failed` (or is
   * dropped when the build is complete in storage): never resumed on a guess.
   */
  async recover(): Promise<void> {
    const { builds, log } = this.deps
    for (const r of await builds.recover()) {
      try {
        if ('unreadable' in r) {
          await this.recoverUnreadable(r.id, r.unreadable)
        } else if (r.record.state === 'uploaded' || r.record.state === 'failed') {
          await builds.forget(r.id) // finished in a previous run: its local copy is not served any more
        } else {
          log.info({ buildId: r.id }, 'resuming an unfinished pause (its sources are checked first)')
          await this.resume(await builds.restore(r.record))
        }
      } catch (err) {
        log.error({ err, buildId: r.id }, 'recovering a pause left by the previous run failed')
      }
    }
  }

  /** Resume a build a previous run of this node left unfinished (its source files must still exist). */
  async resume(build: LocalBuild): Promise<void> {
    // The previous run may have died after its last header write but before recording it: a build
    // whose headers are all in storage is complete, not something to upload twice.
    const kinds = FILE_KINDS.filter((k) => build.request.files[k])
    const stored = await Promise.all(kinds.map((k) => this.deps.store.exists(headerObjectName(build.id, k)).catch(() => false)))
    if (kinds.length > 0 && stored.every(Boolean)) {
      await dropClaimOf(this.deps.store, build.id, this.writer())
      await this.deps.builds.setState(build, 'uploaded')
      this.deps.onState(build)
      return
    }
    this.start(build)
  }

  /** Abort every pause and wait for them, but never forever: a stuck read must not hold the node up. */
  async stop(waitMs = STOP_WAIT_MS): Promise<void> {
    for (const r of this.running.values()) r.abort.abort(new SnapswarmError('ERR_SHUTDOWN', 'node shutting down'))
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), waitMs)
    })
    const all = Promise.allSettled([...this.running.values()].map((r) => r.done))
    if ((await Promise.race([all, timeout])) === 'timeout') {
      this.deps.log.warn({ builds: [...this.running.keys()], waitMs }, 'pauses did not stop in time; leaving them (their records resume or fail at the next start)')
    }
    clearTimeout(timer)
  }

  /**
   * Dirty ranges against the parent (inside its size, aligned to its blocks), when its header can be
   * had at once: a parent not visible yet (paused a moment ago elsewhere) is waited for, and the ranges
   * checked, in the background.
   */
  private async checkAgainstParent(req: PauseRequest, inputs: PauseInputs): Promise<void> {
    for (const kind of FILE_KINDS) {
      if (!req.files[kind]) continue
      const parent = await this.deps.parentHeader(req.parent!, kind, AbortSignal.timeout(PARENT_CHECK_MS)).catch(() => null)
      if (parent) checkDirty(toRanges(req.dirty[kind]), inputs.get(kind).identity.size, parent, kind)
    }
  }

  private refuseKnown(id: BuildId): void {
    if (this.deps.builds.get(id) || this.reserved.has(id)) throw new BuildExistsError(id, 'expected an id new to this node, found it already paused here')
  }

  /** The largest data file the upload can carry: frame-table entries and multipart parts are bounded. */
  private maxDataBytes(req: PauseRequest, kind: FileKind): number {
    let s: CompressionSettings
    try {
      s = resolveCompression(this.deps.compression, kind, req.useCase)
    } catch {
      return Number.MAX_SAFE_INTEGER // an unusual block size: the framing checks the configuration itself
    }
    const framed = s.codec === 'none' && this.deps.pendingCodec === 'none' ? Number.MAX_SAFE_INTEGER : MAX_FRAMES_PER_TABLE * s.frameSize
    return Math.min(MAX_PARTS * s.partSize, framed, Number.MAX_SAFE_INTEGER)
  }

  /** A build whose record is damaged, cut short or from an older version: never resumed. */
  private async recoverUnreadable(id: BuildId, why: string): Promise<void> {
    const { builds, store, log } = this.deps
    const stored = await Promise.all(FILE_KINDS.map((k) => store.exists(headerObjectName(id, k)).catch(() => false)))
    if (stored.some(Boolean)) {
      log.warn({ buildId: id, reason: why }, 'pause record unreadable; the build is in storage, so its local copy is dropped')
      await builds.forget(id)
      return
    }
    log.warn({ buildId: id, reason: why }, 'pause record unreadable; the build is marked failed, not resumed')
    const error = `pause record unreadable after a restart (${why}); the build was not resumed`
    await builds.restoreFailed(id, error).catch((err) => log.error({ err, buildId: id }, 'recording the failure failed'))
    const b = builds.get(id)
    if (b) this.deps.onState(b)
  }

  private start(build: LocalBuild, inputs?: PauseInputs): void {
    const abort = new AbortController()
    const done = this.run(build, abort.signal, inputs)
      .catch((err) => this.deps.log.error({ err, buildId: build.id }, 'pause bookkeeping failed'))
      .finally(() => this.running.delete(build.id))
    this.running.set(build.id, { abort, done })
  }

  private async run(build: LocalBuild, signal: AbortSignal, given?: PauseInputs): Promise<void> {
    const log = this.deps.log.child({ buildId: build.id })
    let inputs = given
    try {
      inputs ??= await this.reopenSources(build)
      await this.frameLocally(build, signal, inputs)
      // Claimed before it is announced: a node that loses the id to another writer never serves
      // its content under that id.
      await takeClaim(this.deps.store, build.id, await this.claimOf(build), signal)
      await this.deps.builds.setState(build, 'pending')
      this.deps.onState(build)
      log.info('pending: serving to peers, uploading')
      await this.upload(build, signal, inputs)
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
      const reason = err instanceof SnapswarmError ? `${err.code}: ${err.message}` : (err as Error).message
      await this.deps.builds.setState(build, 'failed', reason).catch((e) => log.error({ err: e }, 'recording the failure failed'))
    } finally {
      await inputs?.close()
    }
    this.deps.onState(build)
  }

  /** After a restart: open each source again and require it to be the very file the pause accepted. */
  private async reopenSources(build: LocalBuild): Promise<PauseInputs> {
    const opened = new Map<InputName, RegularFile>()
    try {
      for (const name of INPUT_NAMES) {
        if (!build.request.files[name]) continue
        const rec = build.sources[name]
        if (!rec) throw new SourceChangedError(`files.${name}: the pause record holds no identity for it (an older version wrote it), so the source cannot be checked; the build is not resumed`)
        const f = await openRegularFile(rec.path, { noFollow: true, what: `files.${name}` })
        opened.set(name, f)
        const diff = identityDiff(rec.identity, f.identity)
        if (diff) throw new SourceChangedError(`files.${name}: ${rec.path} is not the file this build was paused from (${diff}); the build is not framed again from other content`)
      }
      return new PauseInputs(opened)
    } catch (err) {
      await Promise.allSettled([...opened.values()].map((f) => f.handle.close()))
      throw err
    }
  }

  private settings(build: LocalBuild, kind: FileKind, blockSize: number): { upload: CompressionSettings; local: CompressionSettings } {
    const upload = resolveCompression(this.deps.compression, kind, build.request.useCase, blockSize)
    const codec = this.deps.pendingCodec === 'upload' ? upload.codec : this.deps.pendingCodec
    return { upload, local: { ...upload, codec } }
  }

  /** Frame each data file into the build's directory (or reuse a checked local copy) and derive its pending header. */
  private async frameLocally(build: LocalBuild, signal: AbortSignal, inputs: PauseInputs): Promise<void> {
    const req = build.request
    for (const kind of FILE_KINDS) {
      if (!req.files[kind]) continue
      const parent = req.parent ? await this.deps.parentHeader(req.parent, kind, signal) : null
      const blockSize = parent?.blockSize ?? DEFAULT_BLOCK_SIZE[kind]
      const { local } = this.settings(build, kind, blockSize)
      const src = inputs.get(kind)
      const copy = await this.localCopy(build, kind, src, local, zeroBlockFor(blockSize, local.frameSize), signal)
      const layer = { buildId: build.id, blockSize, info: copy.info, parent, dirty: toRanges(req.dirty[kind]), holes: copy.holes, incomplete: true, headerVersion: this.deps.headerVersion }
      build.files.set(kind, { ...copy, header: headerForFramed(kind, layer) })
    }
    for (const blob of BLOB_KINDS) {
      if (!req.files[blob]) continue
      const bytes = await this.blobBytes(build, blob, inputs.get(blob))
      const path = join(this.deps.builds.buildDir(build.id), blobFileName(blob))
      await writeFile(`${path}.tmp`, bytes)
      await rename(`${path}.tmp`, path)
    }
  }

  /**
   * The local framed copy of one data file: the one recorded by a previous run if its bytes still
   * hash to what was recorded, else framed now from the source, whose content must then hash to
   * what the build announced (if it announced anything yet).
   */
  private async localCopy(build: LocalBuild, kind: FileKind, src: RegularFile, settings: CompressionSettings, zeroBlock: number | undefined, signal: AbortSignal): Promise<LocalCopy> {
    const dir = this.deps.builds.buildDir(build.id)
    const rec = build.framed[kind]
    const source = build.sources[kind]
    // A raw copy carries per-chunk digests derived while framing; it is cheap to frame again.
    if (rec && rec.codec !== 'none') {
      const dataPath = join(dir, rec.file)
      if (recordFits(rec, src.identity.size) && (await localCopyIntact(dataPath, rec))) return copyFromRecord(build.id, dataPath, rec)
      this.deps.log.warn({ buildId: build.id, kind, file: dataPath }, 'the local framed copy does not match its record: framing it again from the source')
    }
    const file = dataFileName(kind, settings.codec)
    const dataPath = join(dir, file)
    const { info, holes, sourceSha256, storedSha256 } = await frameToFile(build.id, src, `${dataPath}.tmp`, { ...settings, zeroBlock }, signal)
    const sha256 = hex(sourceSha256)
    const expected = rec?.sha256 ?? source?.sha256
    if (expected && expected !== sha256) {
      await rm(`${dataPath}.tmp`, { force: true })
      throw new SourceChangedError(`files.${kind}: ${src.path} now holds other content than this build announced (SHA-256 ${expected} expected, found ${sha256}); the build is not framed again from other content`)
    }
    await rename(`${dataPath}.tmp`, dataPath)
    const frames = info.frames.frames.map((f): [number, number] => [f.sizeU, f.sizeC])
    const holeList = holes.length > 0 ? { holes: holes.map((h): [number, number] => [h.start, h.end]), dataSha256: hex(info.sha256) } : {}
    build.framed[kind] = { file, codec: info.frames.codec, fileSize: info.fileSize, frames, sha256, storedSha256, ...holeList }
    if (source) source.sha256 = sha256
    return { dataPath, info, holes, sourceSha256 }
  }

  /** A blob's bytes from its checked source handle; they must hash to what the build recorded, if anything. */
  private async blobBytes(build: LocalBuild, name: BlobKind, src: RegularFile): Promise<Buffer> {
    const bytes = await readHandleFully(src.handle, src.identity.size, `files.${name}`)
    const sha256 = createHash('sha256').update(bytes).digest('hex')
    const rec = build.sources[name as SourceName]
    if (rec?.sha256 && rec.sha256 !== sha256) {
      throw new SourceChangedError(`files.${name}: ${src.path} now holds other content than this build announced (SHA-256 ${rec.sha256} expected, found ${sha256})`)
    }
    if (rec) rec.sha256 = sha256
    return bytes
  }

  /**
   * The build into storage through the one upload path, under the build's claim (ours since before
   * pending): one writer wins the whole build, and a failed attempt leaves nothing in storage.
   */
  private async upload(build: LocalBuild, signal: AbortSignal, inputs: PauseInputs): Promise<void> {
    const { store, limiter } = this.deps
    const throttle = limiter.unlimited ? undefined : (n: number) => limiter.take(n, signal)
    const acked = new Map<FileKind, number>()
    const onProgress = (p: UploadProgress) => {
      this.uploadedBytes.inc(Math.max(0, p.uploaded - (acked.get(p.kind) ?? 0)))
      acked.set(p.kind, p.uploaded)
    }
    const prepared: PreparedBuild = {
      claim: await this.claimOf(build),
      files: [...build.files.keys()].map((kind) => ({ kind, plan: () => this.uploadPlan(build, kind, signal, inputs) })),
      blobs: BLOB_KINDS.filter((b) => build.request.files[b]).map((blob) => ({ blob, bytes: () => this.blobBytes(build, blob, inputs.get(blob)) })),
    }
    await uploadBuild({ store, buildId: build.id, signal, throttle, onProgress, headerVersion: this.deps.headerVersion, prepared })
  }

  /**
   * How one data file is uploaded: its local framed copy when the upload's geometry is the same, else
   * framed again from the handle the pause checked (a file renamed over the path since is never read),
   * with the local copy's block and frame size, so the same holes and stored bytes. A child of a pending
   * parent waits for the parent's final header: the child's final header must carry the ancestors'
   * final frame tables.
   */
  private async uploadPlan(build: LocalBuild, kind: FileKind, signal: AbortSignal, inputs: PauseInputs): Promise<FilePlan> {
    const local = build.files.get(kind)!
    const parent = build.request.parent ? await this.deps.finalHeader(build.request.parent, kind, signal) : null
    const blockSize = parent?.blockSize ?? local.header.blockSize
    const { upload } = this.settings(build, kind, blockSize)
    const holes = local.holes ?? []
    const src = inputs.get(kind)
    // (A copy without holes is the same bytes either way, even one framed before holes existed.)
    const zeroBlock = holes.length > 0 ? zeroBlockFor(blockSize, upload.frameSize) : undefined
    const expect = { size: local.info.fileSize + holeBytes(holes), sha256: local.sourceSha256 ?? local.info.sha256 }
    const source = { plain: src.handle, path: src.path, expect, zeroBlock, storedSize: local.info.fileSize, framed: { dataPath: local.dataPath, info: local.info, holes } }
    return { parent, blockSize, settings: upload, dirty: toRanges(build.request.dirty[kind]), source }
  }

  /** The claim: this node and a digest of the content and upload settings it is about to store. */
  private async claimOf(build: LocalBuild): Promise<BuildWriter> {
    const files = [...build.files].map(([kind, f]) => {
      const { upload } = this.settings(build, kind, f.header.blockSize)
      // The source's size and SHA-256, and the hole geometry when the stored bytes leave zeros out.
      const holes = f.holes ?? []
      const zeroBlock = holes.length > 0 ? zeroBlockFor(f.header.blockSize, upload.frameSize) : undefined
      return { kind, size: f.info.fileSize + holeBytes(holes), sha256: f.sourceSha256 ?? f.info.sha256, settings: upload, blockSize: f.header.blockSize, zeroBlock }
    })
    const blobs = []
    for (const blob of BLOB_KINDS) {
      if (!build.request.files[blob]) continue
      const bytes = await readFile(join(this.deps.builds.buildDir(build.id), blobFileName(blob)))
      blobs.push({ name: blobFileName(blob), sha256: createHash('sha256').update(bytes).digest() })
    }
    return { writer: this.writer(), digest: contentDigest(build.request.parent, files, blobs) }
  }

  private writer(): string {
    return this.deps.writer ?? `node@${hostname()}`
  }
}

/** A local framed copy: where it is, its layer info, its holes and the source's SHA-256. */
interface LocalCopy {
  readonly dataPath: string
  readonly info: BuildInfo
  readonly holes: readonly ByteRange[]
  readonly sourceSha256: Uint8Array
}

/** Frame exactly the bytes the pause saw (its size then), from its checked handle, into `tmpPath`. */
async function frameToFile(
  buildId: BuildId,
  src: RegularFile,
  tmpPath: string,
  settings: CompressionSettings & { zeroBlock?: number },
  signal: AbortSignal,
): Promise<{ info: BuildInfo; holes: readonly ByteRange[]; sourceSha256: Uint8Array; storedSha256: string }> {
  const out = await open(tmpPath, 'w')
  const stored = createHash('sha256')
  try {
    let pos = 0
    const framed = await frameFile(src.handle, { ...settings, signal }, async (bytes) => {
      stored.update(bytes)
      await out.write(bytes, 0, bytes.byteLength, pos)
      pos += bytes.byteLength
    }, { offset: 0, length: src.identity.size })
    await out.sync()
    return { info: framedInfo(buildId, settings.codec, framed), holes: framed.holes, sourceSha256: framed.sourceSha256, storedSha256: stored.digest('hex') }
  } catch (err) {
    await out.close().catch(() => {})
    await rm(tmpPath, { force: true })
    throw err
  } finally {
    await out.close().catch(() => {})
  }
}

/** The recorded local copy is there, of the recorded size, and its bytes hash to the recorded SHA-256. */
async function localCopyIntact(path: string, rec: FramedRecord): Promise<boolean> {
  const expectedSize = rec.frames.reduce((s, [, c]) => s + c, 0)
  let f: RegularFile
  try {
    f = await openRegularFile(path, { noFollow: true })
  } catch {
    return false
  }
  try {
    if (f.identity.size !== expectedSize) return false
    return (await hashHandle(f.handle, expectedSize)) === rec.storedSha256
  } finally {
    await f.handle.close()
  }
}

async function hashHandle(fh: FileHandle, size: number): Promise<string> {
  const hash = createHash('sha256')
  const buf = Buffer.allocUnsafe(Math.min(size, 4 * 1024 * 1024) || 1)
  for (let pos = 0; pos < size; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.byteLength, size - pos), pos)
    if (bytesRead === 0) break
    hash.update(buf.subarray(0, bytesRead))
    pos += bytesRead
  }
  return hash.digest('hex')
}

function copyFromRecord(buildId: BuildId, dataPath: string, rec: FramedRecord): LocalCopy {
  const frames = FrameTable.fromSizes(rec.codec, rec.frames.map(([sizeU, sizeC]) => ({ sizeU, sizeC })))
  if (frames.uncompressedSize !== rec.fileSize) throw new SnapswarmError('ERR_PAUSE_RECORD', `the recorded frame table covers ${frames.uncompressedSize} bytes, the file ${rec.fileSize}`)
  const info = { buildId, fileSize: rec.fileSize, sha256: Buffer.from(rec.dataSha256 ?? rec.sha256, 'hex'), frames }
  return { dataPath, info, holes: (rec.holes ?? []).map(([start, end]) => ({ start, end })), sourceSha256: Buffer.from(rec.sha256, 'hex') }
}

/** The record's holes are well-formed and, with its stored bytes, make up the source's size. */
function recordFits(rec: FramedRecord, sourceSize: number): boolean {
  const holes = rec.holes ?? []
  let prevEnd = 0
  for (const h of holes) {
    if (!Array.isArray(h) || !Number.isSafeInteger(h[0]) || !Number.isSafeInteger(h[1]) || h[0] < prevEnd || h[1] <= h[0]) return false
    prevEnd = h[1]
  }
  return prevEnd <= sourceSize && rec.fileSize + holeBytes(holes.map(([start, end]) => ({ start, end }))) === sourceSize
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex')
}

function toRanges(r: [number, number][] | undefined): ByteRange[] | undefined {
  return r?.map(([start, end]) => ({ start, end }))
}
