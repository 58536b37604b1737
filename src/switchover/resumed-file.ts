/**
 * A build file opened for reading on a node, across the header switchover (docs/ARCHITECTURE.md, "The read path").
 *
 * It starts on the best header available: the final one from storage, or a pending one (incomplete
 * flag) served by the origin. When the upload completes — learnt from an announcement, a USE_STORAGE
 * answer, or a pending read that can no longer be served — it loads the final header FROM STORAGE,
 * checks that it describes the same build and content, and swaps readers atomically. Reads in flight
 * retry under the new header, at most MAX_TRANSITIONS times; the switch happens once per file, so
 * later reads never see a "switch now" error. The chunk cache holds uncompressed bytes addressed by
 * data-file offset and keys them by build id and the content each header promises (per layer: its
 * SHA-256 and size), so a final header that promises what the pending one did reads the same cache
 * files, whatever its frame geometry; one that promises other content never reads the old blocks.
 */
import { SnapswarmError } from '../errors.ts'
import type { Header } from '../format/header.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import type { BuildReader } from '../read/build-reader.ts'
import { raceAbort } from '../util/abort.ts'
import type { BuildStatusBoard } from '../cluster/build-status.ts'

/** The number of header transitions one read may go through. */
export const MAX_TRANSITIONS = 2

/** Called with each read's range and the reader it starts on (which resolves the range to fetch units). */
export type DemandObserver = (offset: number, length: number, reader: BuildReader) => void

export class UploadFailedError extends SnapswarmError {
  constructor(buildId: BuildId) {
    super('ERR_UPLOAD_FAILED', `build ${buildId} is not readable: its origin reports the upload failed, and it is not in storage`)
  }
}

export class BuildUnavailableError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_BUILD_UNAVAILABLE', message)
  }
}

export class SwitchoverError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_SWITCHOVER', message)
  }
}

export interface ResumedFileDeps {
  readonly buildId: BuildId
  readonly kind: FileKind
  readonly board: BuildStatusBoard
  /** Open a reader over the node's shared chunk cache for a header. */
  readonly openReader: (header: Header) => Promise<BuildReader>
  /** The final header from storage, polling with backoff within a bounded time; throws when it never appears. */
  readonly loadFinal: (signal?: AbortSignal) => Promise<Header>
  readonly log: Logger
  readonly onSwitch?: (from: Header, to: Header) => void
  /** Readers of a pending build whose upload failed: a clear error at once, or keep reading from the live origin. */
  readonly onUploadFailed?: 'error' | 'read-from-origin'
}

interface Active {
  readonly reader: BuildReader
  readonly header: Header
  inflight: number
  retired: boolean
}

export class ResumedFile {
  private readonly deps: ResumedFileDeps
  private active: Active
  private switching: Promise<void> | null = null
  private unwatch: () => void
  private closed = false
  /** Aborted by close(): a switchover poll must not outlive the file (node stop would wait for it). */
  private readonly lifetime = new AbortController()
  /** Set when the final header contradicts the pending one: nothing more is served from this file. */
  private broken: Error | null = null
  /** Told of every read before it runs (the access recorder, src/prefetch); prefetches are not reads. */
  private observer: DemandObserver | null = null

  private constructor(deps: ResumedFileDeps, reader: BuildReader) {
    this.deps = deps
    this.active = { reader, header: reader.header, inflight: 0, retired: false }
    // Watching also keeps the build's state and holders on the board while the file is open.
    this.unwatch = deps.board.watch(deps.buildId, (state) => {
      // Proactive switch: readers move to storage as soon as the cluster says the upload finished.
      if (state === 'uploaded' && this.pending) this.switchInBackground()
    })
  }

  static async open(deps: ResumedFileDeps, initial: Header): Promise<ResumedFile> {
    const file = new ResumedFile(deps, await deps.openReader(initial))
    if (file.pending && deps.board.get(deps.buildId) === 'uploaded') file.switchInBackground()
    return file
  }

  private switchInBackground(): void {
    this.switchOnce().catch((err) => {
      if (!this.closed) this.deps.log.warn({ err, buildId: this.deps.buildId, kind: this.deps.kind }, 'proactive switchover failed; reads will retry it')
    })
  }

  get size(): number {
    return this.active.header.size
  }

  get header(): Header {
    return this.active.header
  }

  get pending(): boolean {
    return this.active.header.incomplete
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    // Unsafe allocation is fine: readInto writes every byte or rejects.
    const out = Buffer.allocUnsafe(length)
    await this.readInto(out, offset, signal)
    return out
  }

  /**
   * Fill `dst` with the file's bytes at `offset` (a caller-owned buffer: no allocation per read). A
   * read that fails on the pending copy is redone whole under the final header; once this rejects,
   * nothing writes into `dst` any more (BuildReader.readInto), so the caller may reuse it at once.
   */
  async readInto(dst: Uint8Array, offset: number, signal?: AbortSignal): Promise<void> {
    if (this.observer && !this.closed) this.observer(offset, dst.byteLength, this.active.reader)
    for (let transitions = 0; ; transitions++) {
      if (this.closed) throw new BuildUnavailableError(`build file ${this.deps.buildId}/${this.deps.kind} is closed`)
      if (this.broken) throw this.broken
      const cur = this.active
      if (cur.header.incomplete && this.deps.onUploadFailed !== 'read-from-origin' && this.deps.board.get(this.deps.buildId) === 'failed') {
        throw new UploadFailedError(this.deps.buildId)
      }
      cur.inflight++
      try {
        return await cur.reader.readInto(dst, offset, signal)
      } catch (err) {
        // A local disk error (the chunk cache file) is not the pending copy's fault: no switchover wait.
        if (signal?.aborted || !cur.header.incomplete || isLocalIoError(err)) throw err
        if (this.deps.board.get(this.deps.buildId) === 'failed') throw new UploadFailedError(this.deps.buildId)
        if (transitions >= MAX_TRANSITIONS) throw err
        // The pending copy could not serve this read: the upload finished (switch), or the origin is
        // gone (the final header may still appear in storage within the bounded poll; else a clear error).
        await this.switchOnce(signal).catch((switchErr) => {
          if (this.deps.board.get(this.deps.buildId) === 'failed') throw new UploadFailedError(this.deps.buildId)
          throw new BuildUnavailableError(
            `build ${this.deps.buildId} is pending and its origin cannot serve it (${(err as Error).message}); ` +
              `the final header did not appear in storage: ${(switchErr as Error).message}`,
          )
        })
      } finally {
        cur.inflight--
        if (cur.retired && cur.inflight === 0) await cur.reader.close().catch(() => {})
      }
    }
  }

  /** Observe every read from now on (null: stop). One observer at a time. */
  observe(observer: DemandObserver | null): void {
    this.observer = observer
  }

  /**
   * Fetch ahead the unit holding `offset` under the current header (BuildReader.prefetch); the bytes
   * fetched. Best effort: nothing on a closed or broken file, and an error is the caller's to log.
   */
  async prefetchAt(offset: number): Promise<number> {
    if (this.closed || this.broken) return 0
    const cur = this.active
    cur.inflight++
    try {
      return await cur.reader.prefetch(offset)
    } finally {
      cur.inflight--
      if (cur.retired && cur.inflight === 0) await cur.reader.close().catch(() => {})
    }
  }

  /** One switch per file: concurrent callers share it; after it, the file is final for good. */
  private switchOnce(signal?: AbortSignal): Promise<void> {
    if (!this.pending) return Promise.resolve()
    this.switching ??= this.doSwitch().finally(() => {
      this.switching = null
    })
    return raceAbort(this.switching, signal)
  }

  private async doSwitch(): Promise<void> {
    const from = this.active
    const final = await this.deps.loadFinal(this.lifetime.signal)
    try {
      checkSameContent(from.header, final)
    } catch (err) {
      // The build in storage is not the one we were reading: serving either version now could mix
      // them, so this file serves nothing more (never a wrong byte).
      this.broken = err as Error
      this.deps.log.error({ err, buildId: this.deps.buildId, kind: this.deps.kind }, 'final header contradicts the pending one')
      throw err
    }
    if (this.closed) return
    const reader = await this.deps.openReader(final)
    this.active = { reader, header: final, inflight: 0, retired: false }
    from.retired = true
    if (from.inflight === 0) await from.reader.close().catch(() => {})
    this.deps.log.info({ buildId: this.deps.buildId, kind: this.deps.kind }, 'switched to the final header from storage')
    this.deps.onSwitch?.(from.header, final)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.unwatch()
    this.lifetime.abort(new BuildUnavailableError('build file closed'))
    await this.switching?.catch(() => {})
    this.active.retired = true
    if (this.active.inflight === 0) await this.active.reader.close()
  }
}

/**
 * An error of this node's own files: sources' failures reach a reader as FrameUnavailableError (the
 * fetcher wraps them), so a raw system error from a read is the local chunk cache's.
 */
function isLocalIoError(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string'
}

/**
 * The final header must describe the same virtual file: same build and size, the same
 * mappings, and for every layer whose checksum both headers know, the same SHA-256 of its data.
 */
export function checkSameContent(pending: Header, final: Header): void {
  const id = pending.buildId
  const fail = (what: string) => {
    throw new SwitchoverError(`final header of ${id} in storage does not match the pending one: ${what}`)
  }
  if (final.incomplete) fail('it has the pending flag set')
  if (final.buildId !== id) fail(`build id ${final.buildId}`)
  if (final.size !== pending.size) fail(`size ${final.size}, pending ${pending.size}`)
  if (final.mappings.length !== pending.mappings.length) fail(`${final.mappings.length} mappings, pending ${pending.mappings.length}`)
  final.mappings.forEach((m, i) => {
    const p = pending.mappings[i]
    if (m.offset !== p.offset || m.length !== p.length || m.buildId !== p.buildId || m.buildStorageOffset !== p.buildStorageOffset) fail(`mapping ${i} differs`)
  })
  for (const [buildId, info] of pending.builds) {
    const other = final.builds.get(buildId)
    if (!other) continue
    const known = (s: Uint8Array) => s.some((b) => b !== 0)
    if (other.fileSize !== info.fileSize) fail(`layer ${buildId} size ${other.fileSize}, pending ${info.fileSize}`)
    if (known(info.sha256) && known(other.sha256) && !Buffer.from(info.sha256).equals(Buffer.from(other.sha256))) fail(`layer ${buildId} SHA-256 differs`)
  }
}
