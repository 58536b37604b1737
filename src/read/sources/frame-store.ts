/**
 * The node's store of verified compressed frames (a node serves the builds whose frames it
 * has read). The chunk cache keeps uncompressed bytes; peers ask for stored (compressed) frames, so
 * those are kept here. It is the fetcher's shared-cache slot: written behind reads with bytes the
 * fetcher has verified, asked before storage, an entry found corrupt removed.
 *
 * Two modes:
 * - owned (no shared dir): a directory under the node's data dir, written with the shared cache's
 *   lock / temp / hard-link protocol and bounded by `maxBytes`: above it whole builds are deleted,
 *   least recently used first, never one pinned (frames being served or written). Entry names carry
 *   the whole frame reference, so a restart rebuilds the index from names alone (frame-store-layout.ts).
 * - shared (cache.sharedDir): the shared directory itself, with the shared cache's names. The node tracks only the
 *   entries it read or wrote there; over `maxBytes` it forgets builds (stops serving and announcing
 *   them) but never deletes another node's file. Only corrupt entries are deleted, as before.
 *
 * A frame read for a peer (`readVerified`) is verified again before it leaves: local disks rot, and a
 * peer must only ever get the bytes that were verified when stored. A short or corrupt entry is removed.
 */
import { open, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { type BuildId, type CodecName, type FileKind, storageName } from '../../format/types.ts'
import { createRegistry, type Registry } from '../../obs/metrics.ts'
import { readUpTo } from '../../util/file-io.ts'
import { PinCounts } from '../../util/pins.ts'
import { FrameStoreMetrics } from '../metrics.ts'
import type { FrameRef, FrameSource } from '../source.ts'
import { verifyFrame } from '../verify.ts'
import { entryName, frameKey, sameRef, scanEntries } from './frame-store-layout.ts'
import { type SharedCacheOptions, SharedCacheSource, type SharedWriteResult } from './shared-cache.ts'

export interface FrameStoreOptions extends Omit<SharedCacheOptions, 'name'> {
  readonly mode: 'owned' | 'shared'
  /** Owned: bytes kept on disk. Shared: bytes of entries tracked (served and announced). */
  readonly maxBytes: number
  readonly registry?: Registry
  /** Owned mode: frames of a build for which this says false are not stored (the origin's own builds). */
  readonly accept?: (buildId: BuildId) => boolean
}

/** Build ids whose frames must never be stored or served again (uploads that failed); bounded. */
const MAX_FORBIDDEN = 4096

interface BuildEntry {
  readonly id: BuildId
  /** The content key every frame here was read under: one content per build (see `add`). */
  readonly content: string | undefined
  /** By frameKey(kind, codec, startC, sizeC): what a peer's request names. */
  readonly frames: Map<string, FrameRef>
  bytes: number
}

export type StoreChange = { buildId: BuildId; present: boolean }

/**
 * The frame store asked first, before peers, for the frames it holds: local disk instead of a network
 * round trip. It answers only those (from its index, no syscall otherwise) and never for a build
 * `askPeersFirst` names (one that may be pending: its origin is asked first, the store stays the
 * fallback after peers). Counted under the store's own name; its bytes are not offered back to it.
 */
export function heldFramesFirst(store: Pick<FrameStore, 'name' | 'has' | 'fetch' | 'remove'>, askPeersFirst: (buildId: BuildId) => boolean): FrameSource {
  return {
    name: store.name,
    viewOf: store,
    fetch: (ref, signal) => (store.has(ref) && !askPeersFirst(ref.buildId) ? store.fetch(ref, signal) : Promise.resolve(null)),
    remove: (ref) => store.remove(ref),
  }
}

export class FrameStore extends SharedCacheSource {
  readonly mode: 'owned' | 'shared'
  readonly maxBytes: number
  private readonly accept: ((buildId: BuildId) => boolean) | undefined
  private readonly m: FrameStoreMetrics
  /** Least recently used first: every use moves a build to the end. */
  private readonly byBuild = new Map<BuildId, BuildEntry>()
  private readonly pins = new PinCounts<BuildId>()
  private readonly deleting = new Map<BuildId, Promise<void>>()
  /** Deletions of frames replaced by another content of their build (see forgetContent). */
  private readonly removing = new Set<Promise<void>>()
  private readonly forbidden = new Map<BuildId, true>()
  private readonly listeners = new Set<(c: StoreChange) => void>()
  private evicting: Promise<void> | null = null
  private total = 0

  private constructor(opts: FrameStoreOptions) {
    // The node's own store re-verifies every entry before serving it (cached-frames.ts), so it skips the
    // shared directory's fsync per frame; a shared directory keeps it (other nodes read it as is).
    super({ ...opts, name: opts.mode === 'owned' ? 'frame-store' : 'shared', fsync: opts.mode !== 'owned' })
    this.mode = opts.mode
    this.maxBytes = opts.maxBytes
    this.accept = opts.accept
    this.m = new FrameStoreMetrics(opts.registry ?? createRegistry())
  }

  static async open(opts: FrameStoreOptions): Promise<FrameStore> {
    const store = new FrameStore(opts)
    if (opts.mode === 'owned') {
      for (const refs of await scanEntries(opts.dir)) for (const ref of refs) store.add(ref)
      store.log.info({ builds: store.byBuild.size, bytes: store.total }, 'frame store opened')
    }
    store.evictIfNeeded()
    await store.evicting
    return store
  }

  /** Owned: `{buildId}/{file}/{codec}-{startC:016x}-{sizeC:x}-{startU:x}-{sizeU:x}[-{content}].frm`; shared: the shared cache's names. */
  override entryPath(ref: FrameRef): string {
    if (this.mode === 'shared') return super.entryPath(ref)
    return join(this.dir, ref.buildId, storageName(ref.kind), entryName(ref))
  }

  get bytes(): number {
    return this.total
  }

  /** Builds with frames here, most recently used first. */
  builds(): BuildId[] {
    return [...this.byBuild.keys()].reverse()
  }

  has(ref: FrameRef): boolean {
    const f = this.byBuild.get(ref.buildId)?.frames.get(frameKey(ref.kind, ref.codec, ref.startC, ref.sizeC))
    return f !== undefined && sameRef(f, ref)
  }

  /** The stored frame a peer's request names (codec + compressed range), if this store holds it. */
  lookup(buildId: BuildId, kind: FileKind, codec: CodecName, startC: number, sizeC: number): FrameRef | undefined {
    return this.byBuild.get(buildId)?.frames.get(frameKey(kind, codec, startC, sizeC))
  }

  /** Keep a build's frames whatever the size pressure until the returned function is called. */
  pin(buildId: BuildId): () => void {
    return this.pins.pin(buildId, () => this.evictIfNeeded())
  }

  isForbidden(buildId: BuildId): boolean {
    return this.forbidden.has(buildId)
  }

  /** A build whose upload failed: drop its frames and never store or serve it again. */
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

  /** All of an entry's stored bytes, checked: exact size and the codec's own checksum. null = not servable. */
  async readVerified(ref: FrameRef): Promise<Uint8Array | null> {
    let fh: Awaited<ReturnType<typeof open>>
    try {
      fh = await open(this.entryPath(ref), 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err, buildId: ref.buildId }, 'frame store read failed')
      this.unindex(ref) // gone (or unreadable): stop offering it
      return null
    }
    try {
      const found = (await fh.stat()).size
      const buf = Buffer.allocUnsafe(ref.sizeC)
      const n = found === ref.sizeC ? await readUpTo(fh, buf, 0) : 0
      if (found !== ref.sizeC || n !== ref.sizeC) {
        await this.discard(ref, `expected ${ref.sizeC} bytes, found ${found}`)
        return null
      }
      try {
        await verifyFrame(ref, buf)
      } catch (err) {
        await this.discard(ref, (err as Error).message)
        return null
      }
      this.touch(ref.buildId)
      return buf
    } catch (err) {
      this.log.warn({ err, buildId: ref.buildId }, 'frame store read failed')
      return null
    } finally {
      await fh.close()
    }
  }

  /** Files present with the exact stored size (cheap: no read); a mismatch is discarded. */
  async present(refs: readonly FrameRef[]): Promise<boolean> {
    for (const ref of refs) {
      const size = await stat(this.entryPath(ref)).then((s) => s.size, () => -1)
      if (size === ref.sizeC) continue
      if (size < 0) this.unindex(ref)
      else await this.discard(ref, `expected ${ref.sizeC} bytes, found ${size}`)
      return false
    }
    return true
  }

  override async fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null> {
    // Owned: only this node writes here and the index knows every entry, so a miss costs no syscall.
    if (this.mode === 'owned' && !this.has(ref)) return null
    const bytes = await super.fetch(ref, signal)
    if (!bytes) this.unindex(ref) // vanished (e.g. another node removed a corrupt shared entry): stop offering it
    // Shared mode learns the entries it reads; unverified yet, but a corrupt one comes back through remove().
    if (bytes && this.mode === 'shared' && !this.forbidden.has(ref.buildId)) this.add(ref)
    if (bytes) this.touch(ref.buildId)
    return bytes
  }

  override offer(ref: FrameRef, verified: Uint8Array): void {
    if (this.forbidden.has(ref.buildId) || (this.accept && !this.accept(ref.buildId))) return
    // A raw chunk carries no checksum: a rotten or torn copy could not be told from a good one before
    // it is served, so the node's own store keeps compressed frames only (a shared dir keeps its rules).
    if (this.mode === 'owned' && ref.codec === 'none') return
    super.offer(ref, verified)
  }

  override async store(ref: FrameRef, verified: Uint8Array): Promise<SharedWriteResult> {
    const unpin = this.pin(ref.buildId)
    try {
      await this.deleting.get(ref.buildId) // an eviction of this build finishes before it is written again
      const result = await super.store(ref, verified)
      if (result !== 'locked') this.add(ref)
      return result
    } finally {
      unpin()
    }
  }

  override async remove(ref: FrameRef): Promise<void> {
    this.unindex(ref)
    await super.remove(ref)
  }

  /** Background writes and deletions have ended (tests, shutdown). */
  override async idle(): Promise<void> {
    await super.idle()
    while (this.evicting || this.deleting.size > 0 || this.removing.size > 0) {
      await Promise.all([this.evicting, ...this.deleting.values(), ...this.removing])
    }
  }

  protected override countWrite(result: SharedWriteResult | 'failed' | 'dropped'): void {
    if (this.mode === 'shared') super.countWrite(result)
    else this.m.writes.inc({ result })
  }

  private async discard(ref: FrameRef, why: string): Promise<void> {
    this.m.corrupt.inc()
    this.log.warn({ buildId: ref.buildId, kind: ref.kind, startC: ref.startC, why }, 'frame store entry failed verification; removed')
    await this.remove(ref).catch((err: unknown) => this.log.warn({ err }, 'could not remove a corrupt frame store entry'))
  }

  private add(ref: FrameRef): void {
    if (this.forbidden.has(ref.buildId)) {
      // Written while the build was being dropped (its upload failed): never kept.
      if (this.mode === 'owned') void rm(this.entryPath(ref), { force: true }).catch(() => {})
      return
    }
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
  }

  /**
   * A frame read under a header that promises other content than the build's frames here: those go
   * (their files too, in owned mode), so the store holds one content per build id and a peer asking by
   * compressed range gets frames of the content last read here.
   */
  private forgetContent(b: BuildEntry): void {
    this.byBuild.delete(b.id)
    this.total -= b.bytes
    if (this.mode === 'owned') {
      const gone = Promise.all([...b.frames.values()].map((f) => rm(this.entryPath(f), { force: true })))
        .then(() => {})
        .catch((err: unknown) => this.log.warn({ err, buildId: b.id }, 'frame store could not delete frames of another content'))
        .finally(() => this.removing.delete(gone))
      this.removing.add(gone)
    }
    this.log.info({ buildId: b.id, frames: b.frames.size }, 'frame store dropped frames read under another content of the build')
  }

  private unindex(ref: FrameRef): void {
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

  private touch(buildId: BuildId): void {
    const b = this.byBuild.get(buildId)
    if (!b) return
    this.byBuild.delete(buildId)
    this.byBuild.set(buildId, b)
  }

  private evictIfNeeded(): void {
    if (this.total <= this.maxBytes || this.evicting) return
    this.evicting = this.evictLru().finally(() => {
      this.evicting = null
    })
  }

  /** Least recently used unpinned builds go until the store fits; builds added meanwhile are seen too. */
  private async evictLru(): Promise<void> {
    while (this.total > this.maxBytes) {
      const victim = [...this.byBuild.values()].find((b) => !this.pins.has(b.id))
      if (!victim) return // everything left is pinned: the next unpin evicts again
      await this.drop(victim.id, 'evicted')
    }
  }

  /** Forget a build's frames (both modes); in owned mode, delete them. */
  private async drop(buildId: BuildId, why: 'evicted' | 'failed'): Promise<void> {
    const b = this.byBuild.get(buildId)
    if (b) {
      this.byBuild.delete(buildId)
      this.total -= b.bytes
      this.gauges()
      if (why === 'evicted') this.m.evictions.inc()
      this.log.info({ buildId, bytes: b.bytes, frames: b.frames.size, why, mode: this.mode }, 'frame store dropped a build')
      this.emit({ buildId, present: false })
    }
    if (this.mode !== 'owned' || this.deleting.has(buildId)) return
    const gone = rm(join(this.dir, buildId), { recursive: true, force: true, maxRetries: 3 })
      .catch((err: unknown) => this.log.warn({ err, buildId }, 'frame store could not delete a build'))
      .finally(() => this.deleting.delete(buildId))
    this.deleting.set(buildId, gone)
    await gone
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
