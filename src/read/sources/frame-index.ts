/**
 * Which frames of which builds a store holds: the bookkeeping the node's frame store (frame-store.ts)
 * and the tracked shared cache (shared-cache.ts) share by composition. Pure memory, no file I/O: the
 * owner is told when the index lets frames go (`onDrop`) and decides what happens to their files.
 *
 * - Per build, the frames by what a peer's request names (kind, codec, compressed range), one content
 *   per build id (a frame read under a header promising another content replaces the build's frames).
 * - Builds in least recently used order; above `maxBytes` whole builds are dropped, least recently used
 *   first, never a pinned one (frames being served or written).
 * - Forbidden builds (uploads that failed): dropped and never indexed again; the list is bounded.
 * - Listeners hear when a build appears in or leaves the index (what the node announces as cached).
 */
import type { BuildId, CodecName, FileKind } from '../../format/types.ts'
import type { Logger } from '../../obs/log.ts'
import { PinCounts } from '../../util/pins.ts'
import type { FrameStoreMetrics } from '../metrics.ts'
import type { FrameRef } from '../source.ts'
import { frameKey, sameRef } from './frame-store-layout.ts'

/** Build ids whose frames must never be stored or served again (uploads that failed); bounded. */
const MAX_FORBIDDEN = 4096

export type StoreChange = { buildId: BuildId; present: boolean }

/** Why the index let frames go: the size bound, a failed upload, or another content of the build read. */
export type DropReason = 'evicted' | 'failed' | 'replaced'

export interface FrameIndexOptions {
  readonly maxBytes: number
  readonly metrics: FrameStoreMetrics
  readonly log: Logger
  /**
   * The index let `frames` of `buildId` go (none indexed: `frames` is empty). The owner's files: the
   * node's own store deletes them, a shared directory keeps them (other nodes read them). An eviction
   * waits for the returned promise before it looks at the size again.
   */
  readonly onDrop?: (buildId: BuildId, frames: readonly FrameRef[], why: DropReason) => Promise<void> | void
}

interface BuildEntry {
  readonly id: BuildId
  /** The content key every frame here was read under: one content per build (see `add`). */
  readonly content: string | undefined
  /** By frameKey(kind, codec, startC, sizeC): what a peer's request names. */
  readonly frames: Map<string, FrameRef>
  bytes: number
}

export class FrameIndex {
  readonly maxBytes: number
  private readonly m: FrameStoreMetrics
  private readonly log: Logger
  private readonly onDrop: FrameIndexOptions['onDrop']
  /** Least recently used first: every use moves a build to the end. */
  private readonly byBuild = new Map<BuildId, BuildEntry>()
  private readonly pins = new PinCounts<BuildId>()
  private readonly forbidden = new Map<BuildId, true>()
  private readonly listeners = new Set<(c: StoreChange) => void>()
  private evicting: Promise<void> | null = null
  private total = 0

  constructor(opts: FrameIndexOptions) {
    this.maxBytes = opts.maxBytes
    this.m = opts.metrics
    this.log = opts.log
    this.onDrop = opts.onDrop
  }

  /** Compressed bytes of every frame indexed. */
  get bytes(): number {
    return this.total
  }

  /** Builds with frames here, most recently used first. */
  builds(): BuildId[] {
    return [...this.byBuild.keys()].reverse()
  }

  /** This exact frame (same geometry, same promised content) is held. */
  has(ref: FrameRef): boolean {
    const f = this.byBuild.get(ref.buildId)?.frames.get(frameKey(ref.kind, ref.codec, ref.startC, ref.sizeC))
    return f !== undefined && sameRef(f, ref)
  }

  /** The held frame a peer's request names (codec + compressed range), if any. */
  lookup(buildId: BuildId, kind: FileKind, codec: CodecName, startC: number, sizeC: number): FrameRef | undefined {
    return this.byBuild.get(buildId)?.frames.get(frameKey(kind, codec, startC, sizeC))
  }

  /** Every frame of one file of a build held here, in compressed offset order. */
  framesOf(buildId: BuildId, kind: FileKind): FrameRef[] {
    const b = this.byBuild.get(buildId)
    if (!b) return []
    return [...b.frames.values()].filter((f) => f.kind === kind).sort((x, y) => x.startC - y.startC)
  }

  /** Keep a build's frames whatever the size pressure until the returned function is called. */
  pin(buildId: BuildId): () => void {
    return this.pins.pin(buildId, () => this.evictIfNeeded())
  }

  isForbidden(buildId: BuildId): boolean {
    return this.forbidden.has(buildId)
  }

  /** A build whose upload failed: drop its frames and never index it again. */
  async forbid(buildId: BuildId): Promise<void> {
    this.forbidden.delete(buildId)
    this.forbidden.set(buildId, true)
    if (this.forbidden.size > MAX_FORBIDDEN) this.forbidden.delete(this.forbidden.keys().next().value!)
    await this.drop(buildId, 'failed')
  }

  subscribe(listener: (c: StoreChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Index a frame now on disk; false (not indexed) for a forbidden build. */
  add(ref: FrameRef): boolean {
    if (this.forbidden.has(ref.buildId)) return false
    let b = this.byBuild.get(ref.buildId)
    const isNew = b === undefined
    if (b && b.content !== ref.content) {
      this.forgetContent(b)
      b = undefined
    }
    b ??= { id: ref.buildId, content: ref.content, frames: new Map(), bytes: 0 }
    const key = frameKey(ref.kind, ref.codec, ref.startC, ref.sizeC)
    const had = b.frames.get(key)
    // Same key, other geometry (startU/sizeU): the newer one is served. Its file has another name
    // (the name carries startU and sizeU), so both count until the build goes.
    b.frames.set(key, { ...ref })
    if (!had || !sameRef(had, ref)) {
      b.bytes += ref.sizeC
      this.total += ref.sizeC
    }
    this.byBuild.set(ref.buildId, b)
    this.touch(ref.buildId)
    this.gauges()
    if (isNew) this.emit({ buildId: ref.buildId, present: true })
    this.evictIfNeeded()
    return true
  }

  /** Stop offering a frame (gone, unreadable or corrupt on disk). */
  unindex(ref: FrameRef): void {
    const b = this.byBuild.get(ref.buildId)
    const key = frameKey(ref.kind, ref.codec, ref.startC, ref.sizeC)
    const f = b?.frames.get(key)
    if (!b || !f || !sameRef(f, ref)) return
    b.frames.delete(key)
    b.bytes -= ref.sizeC
    this.total -= ref.sizeC
    if (b.frames.size === 0) {
      this.byBuild.delete(b.id)
      this.emit({ buildId: b.id, present: false })
    }
    this.gauges()
  }

  /** A build was used: it becomes the most recently used. */
  touch(buildId: BuildId): void {
    const b = this.byBuild.get(buildId)
    if (!b) return
    this.byBuild.delete(buildId)
    this.byBuild.set(buildId, b)
  }

  /** Resolves when no eviction is running. */
  async idle(): Promise<void> {
    while (this.evicting) await this.evicting
  }

  /**
   * A frame read under a header that promises other content than the build's frames here: those go,
   * so the index holds one content per build id and a peer asking by compressed range gets frames of
   * the content last read here.
   */
  private forgetContent(b: BuildEntry): void {
    this.byBuild.delete(b.id)
    this.total -= b.bytes
    this.log.info({ buildId: b.id, frames: b.frames.size }, 'frame store dropped frames read under another content of the build')
    void this.onDrop?.(b.id, [...b.frames.values()], 'replaced')
  }

  private evictIfNeeded(): void {
    if (this.total <= this.maxBytes || this.evicting) return
    this.evicting = this.evictLru().finally(() => {
      this.evicting = null
    })
  }

  /** Least recently used unpinned builds go until the index fits; builds added meanwhile are seen too. */
  private async evictLru(): Promise<void> {
    while (this.total > this.maxBytes) {
      const victim = [...this.byBuild.values()].find((b) => !this.pins.has(b.id))
      if (!victim) return // everything left is pinned: the next unpin evicts again
      await this.drop(victim.id, 'evicted')
    }
  }

  /** Forget a build's frames and tell the owner (also when none were indexed: files may exist). */
  private async drop(buildId: BuildId, why: 'evicted' | 'failed'): Promise<void> {
    const b = this.byBuild.get(buildId)
    if (b) {
      this.byBuild.delete(buildId)
      this.total -= b.bytes
      this.gauges()
      if (why === 'evicted') this.m.evictions.inc()
      this.log.info({ buildId, bytes: b.bytes, frames: b.frames.size, why }, 'frame store dropped a build')
      this.emit({ buildId, present: false })
    }
    await this.onDrop?.(buildId, b ? [...b.frames.values()] : [], why)
  }

  private emit(c: StoreChange): void {
    for (const l of this.listeners) {
      try {
        l(c)
      } catch (err) {
        this.log.warn({ err }, 'frame store listener failed')
      }
    }
  }

  private gauges(): void {
    this.m.bytes.set(this.total)
    this.m.builds.set(this.byBuild.size)
  }
}
