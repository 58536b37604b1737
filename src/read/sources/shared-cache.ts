/**
 * The shared frame cache (names in docs/FORMAT.md): a directory (an NFS mount in production) of verified frames
 * that every node of a cluster reads before going to object storage.
 *
 * Writers follow the lock / temp / hard-link protocol (entry-files.ts) so readers only ever see
 * complete files; each entry is fsynced before it gets its final name (other nodes read it as is).
 *
 * This class never verifies: the fetcher verifies every frame (verify.ts) and only offers verified
 * bytes here; a corrupt entry found by the fetcher is removed with `remove` (partial or
 * corrupt frames written to the shared cache). So only what verification can check is kept or read
 * here: compressed frames (codec checksums) and raw chunks whose header gives their SHA-256. A raw
 * chunk without one (a legacy raw build) could rot on this disk and would still pass the size check:
 * it is neither written nor read, and always comes from a source that holds the original.
 *
 * Two classes: `SharedCacheSource` is the directory as a frame source; `TrackedSharedCache` adds a
 * FrameIndex of the entries this node read or wrote there, so the node serves those to peers and
 * announces them (held-frames.ts). Over its `maxBytes` it forgets builds (stops serving and announcing
 * them) but never deletes another node's file: only corrupt entries are deleted.
 */
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { storageName } from '../../format/types.ts'
import { type Logger, silentLogger } from '../../obs/log.ts'
import { createRegistry, type Registry } from '../../obs/metrics.ts'
import { RAW_CHUNK_SIZE, SHARED_LOCK_STALE_MS, SHARED_MAX_PENDING_WRITES } from '../constants.ts'
import { FrameStoreMetrics, ReadMetrics } from '../metrics.ts'
import type { FrameRef, FrameSource } from '../source.ts'
import { BackgroundWrites, publishEntry, readEntry, type SharedWriteResult, type WriteOutcome } from './entry-files.ts'
import { FrameIndex } from './frame-index.ts'
import { type HeldFrames, presentEntries, readVerifiedEntry } from './held-frames.ts'

export type { SharedWriteResult } from './entry-files.ts'

export interface SharedCacheOptions {
  readonly dir: string
  readonly logger?: Logger
  readonly metrics?: ReadMetrics
  readonly staleLockMs?: number
  readonly maxPendingWrites?: number
}

export class SharedCacheSource implements FrameSource {
  readonly name = 'shared'
  readonly dir: string
  readonly log: Logger
  readonly metrics: ReadMetrics
  private readonly staleLockMs: number
  private readonly writes: BackgroundWrites

  constructor(opts: SharedCacheOptions) {
    this.dir = opts.dir
    this.log = (opts.logger ?? silentLogger).child({ component: 'shared-cache' })
    this.metrics = opts.metrics ?? new ReadMetrics()
    this.staleLockMs = opts.staleLockMs ?? SHARED_LOCK_STALE_MS
    this.writes = new BackgroundWrites(opts.maxPendingWrites ?? SHARED_MAX_PENDING_WRITES, (r) => this.countWrite(r), this.log)
  }

  /**
   * `{buildId}/{file}/{startC as 16 hex}-{sizeC as hex}.frm`, raw `{buildId}/{file}/{index:012}-{size}.bin`;
   * a raw chunk off the 4 MiB grid (a raw build's digested chunks follow its frame size):
   * `{buildId}/{file}/{startU as 16 hex}-{sizeU as hex}.raw`.
   */
  entryPath(ref: FrameRef): string {
    const base = join(this.dir, ref.buildId, storageName(ref.kind))
    const hex16 = (n: number) => n.toString(16).padStart(16, '0')
    if (ref.codec !== 'none') return join(base, `${hex16(ref.startC)}-${ref.sizeC.toString(16)}.frm`)
    // The size is the chunk's own length, so a last chunk cut shorter never collides with a full one.
    if (ref.startU % RAW_CHUNK_SIZE === 0) return join(base, `${String(ref.startU / RAW_CHUNK_SIZE).padStart(12, '0')}-${ref.sizeU}.bin`)
    return join(base, `${hex16(ref.startU)}-${ref.sizeU.toString(16)}.raw`)
  }

  /** Frames and digested raw chunks: what the fetcher can verify when it reads them back. */
  keeps(ref: FrameRef): boolean {
    return ref.codec !== 'none' || ref.digest !== undefined
  }

  async fetch(ref: FrameRef, _signal: AbortSignal): Promise<Uint8Array | null> {
    if (!this.keeps(ref)) return null
    return readEntry(this.entryPath(ref), ref.sizeC)
  }

  /** Delete an entry that failed verification, so the next reader refetches it. */
  async remove(ref: FrameRef): Promise<void> {
    await rm(this.entryPath(ref), { force: true })
    this.log.warn({ buildId: ref.buildId, kind: ref.kind, startC: ref.startC }, 'removed corrupt shared cache entry')
  }

  /** Fire-and-forget write of VERIFIED bytes: never blocks the read, errors are logged, bounded in flight. */
  offer(ref: FrameRef, verified: Uint8Array): void {
    this.offerAs(ref, () => this.store(ref, verified))
  }

  /** `offer` with another write (the tracked cache indexes what it wrote): same rules, same bound. */
  offerAs(ref: FrameRef, write: () => Promise<SharedWriteResult>): void {
    if (this.keeps(ref)) this.writes.run({ buildId: ref.buildId, startC: ref.startC }, write)
  }

  /** Resolves when every background write started so far has ended (tests, shutdown). */
  async idle(): Promise<void> {
    await this.writes.idle()
  }

  /** The lock / temp / hard-link protocol (lock, write a temp file, link it into place). Call only with verified bytes. */
  async store(ref: FrameRef, verified: Uint8Array): Promise<SharedWriteResult> {
    return publishEntry(this.entryPath(ref), verified, { staleLockMs: this.staleLockMs, log: this.log })
  }

  private countWrite(result: WriteOutcome): void {
    this.metrics.sharedWrites.inc({ result })
  }
}

export interface TrackedSharedCacheOptions extends SharedCacheOptions {
  /** Bytes of entries tracked (served and announced); never a bound on the directory itself. */
  readonly maxBytes: number
  readonly registry?: Registry
}

/** The shared directory plus the index of the entries this node read or wrote there (served to peers). */
export class TrackedSharedCache implements HeldFrames {
  readonly name = 'shared'
  readonly index: FrameIndex
  readonly shared: SharedCacheSource
  readonly metrics: FrameStoreMetrics
  readonly log: Logger

  constructor(opts: TrackedSharedCacheOptions) {
    this.shared = new SharedCacheSource(opts)
    this.log = this.shared.log
    this.metrics = new FrameStoreMetrics(opts.registry ?? createRegistry())
    // Forgetting a build only stops serving it: the files are other nodes' too.
    this.index = new FrameIndex({ maxBytes: opts.maxBytes, metrics: this.metrics, log: this.log })
  }

  get dir(): string {
    return this.shared.dir
  }

  entryPath(ref: FrameRef): string {
    return this.shared.entryPath(ref)
  }

  async fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null> {
    const bytes = await this.shared.fetch(ref, signal)
    if (!bytes) {
      this.index.unindex(ref) // vanished (e.g. another node removed a corrupt entry): stop offering it
      return null
    }
    // Learnt from reading: unverified yet, but a corrupt one comes back through remove().
    this.index.add(ref)
    this.index.touch(ref.buildId)
    return bytes
  }

  offer(ref: FrameRef, verified: Uint8Array): void {
    if (!this.index.isForbidden(ref.buildId)) this.shared.offerAs(ref, () => this.store(ref, verified))
  }

  /** Write one entry now (call only with verified bytes) and track it. */
  async store(ref: FrameRef, verified: Uint8Array): Promise<SharedWriteResult> {
    const unpin = this.index.pin(ref.buildId)
    try {
      const result = await this.shared.store(ref, verified)
      if (result !== 'locked') this.index.add(ref)
      return result
    } finally {
      unpin()
    }
  }

  async remove(ref: FrameRef): Promise<void> {
    this.index.unindex(ref)
    await this.shared.remove(ref)
  }

  readVerified(ref: FrameRef): Promise<Uint8Array | null> {
    return readVerifiedEntry(this, ref)
  }

  present(refs: readonly FrameRef[]): Promise<boolean> {
    return presentEntries(this, refs)
  }

  async idle(): Promise<void> {
    await this.shared.idle()
    await this.index.idle()
  }
}
