/**
 * The node's own store of verified compressed frames (a node serves the builds whose frames it has
 * read). The chunk cache keeps uncompressed bytes; peers ask for stored (compressed) frames, so those
 * are kept here: a directory under the node's data dir that only this node writes. It is a frame
 * source of the fetcher: written behind reads with bytes the fetcher has verified, asked before
 * storage, an entry found corrupt removed.
 *
 * Entries are published with a temp file and a rename (entry-files.ts; only this node writes here,
 * and one write per entry runs at a time) under names that carry the whole frame reference
 * (frame-store-layout.ts), so a restart rebuilds the index (frame-index.ts) from names alone. Bounded by `maxBytes`: above it whole builds are deleted,
 * least recently used first, never one pinned (frames being served or written).
 *
 * A cluster that shares a frame directory uses the tracked shared cache (shared-cache.ts) instead.
 */
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { BuildId } from '../../format/types.ts'
import { storageName } from '../../format/types.ts'
import { type Logger, silentLogger } from '../../obs/log.ts'
import { createRegistry, type Registry } from '../../obs/metrics.ts'
import { SHARED_MAX_PENDING_WRITES } from '../constants.ts'
import { FrameStoreMetrics } from '../metrics.ts'
import type { FrameRef } from '../source.ts'
import { BackgroundWrites, publishOwnEntry, readEntry, type SharedWriteResult } from './entry-files.ts'
import { type DropReason, FrameIndex } from './frame-index.ts'
import { entryName, scanEntries } from './frame-store-layout.ts'
import { type HeldFrames, presentEntries, readVerifiedEntry } from './held-frames.ts'

export interface FrameStoreOptions {
  readonly dir: string
  /** Bytes kept on disk. */
  readonly maxBytes: number
  readonly registry?: Registry
  readonly logger?: Logger
  readonly maxPendingWrites?: number
  /** Frames of a build for which this says false are not stored (the origin's own builds). */
  readonly accept?: (buildId: BuildId) => boolean
}

export class FrameStore implements HeldFrames {
  readonly name = 'frame-store'
  readonly dir: string
  readonly index: FrameIndex
  readonly metrics: FrameStoreMetrics
  readonly log: Logger
  private readonly accept: ((buildId: BuildId) => boolean) | undefined
  private readonly writes: BackgroundWrites
  /** Writes running, by entry path: a second offer of the same frame waits for the first. */
  private readonly storing = new Map<string, Promise<SharedWriteResult>>()
  private readonly deleting = new Map<BuildId, Promise<void>>()
  /** Deletions of frames replaced by another content of their build. */
  private readonly removing = new Set<Promise<void>>()

  private constructor(opts: FrameStoreOptions) {
    this.dir = opts.dir
    this.log = (opts.logger ?? silentLogger).child({ component: 'frame-store' })
    this.metrics = new FrameStoreMetrics(opts.registry ?? createRegistry())
    this.accept = opts.accept
    this.writes = new BackgroundWrites(opts.maxPendingWrites ?? SHARED_MAX_PENDING_WRITES, (r) => this.metrics.writes.inc({ result: r }), this.log)
    this.index = new FrameIndex({ maxBytes: opts.maxBytes, metrics: this.metrics, log: this.log, onDrop: (id, frames, why) => this.deleteFiles(id, frames, why) })
  }

  /** Opens the store and indexes the entries already in `dir` (the index is rebuilt from their names). */
  static async open(opts: FrameStoreOptions): Promise<FrameStore> {
    const store = new FrameStore(opts)
    for (const refs of await scanEntries(opts.dir)) for (const ref of refs) store.indexFile(ref)
    store.log.info({ builds: store.index.builds().length, bytes: store.index.bytes }, 'frame store opened')
    await store.index.idle()
    return store
  }

  /** `{buildId}/{file}/{codec}-{startC:016x}-{sizeC:x}-{startU:x}-{sizeU:x}[-{content}].frm` */
  entryPath(ref: FrameRef): string {
    return join(this.dir, ref.buildId, storageName(ref.kind), entryName(ref))
  }

  async fetch(ref: FrameRef, _signal: AbortSignal): Promise<Uint8Array | null> {
    // Only this node writes here and the index knows every entry, so a miss costs no syscall.
    if (!this.index.has(ref)) return null
    const bytes = await readEntry(this.entryPath(ref), ref.sizeC)
    if (!bytes) this.index.unindex(ref) // vanished: stop offering it
    else this.index.touch(ref.buildId)
    return bytes
  }

  /** Fire-and-forget write of VERIFIED bytes: never blocks the read, errors are logged, bounded in flight. */
  offer(ref: FrameRef, verified: Uint8Array): void {
    if (this.index.isForbidden(ref.buildId) || (this.accept && !this.accept(ref.buildId))) return
    // A raw chunk carries no checksum: a rotten or torn copy could not be told from a good one before
    // it is served, so the node's own store keeps compressed frames only.
    if (ref.codec === 'none') return
    this.writes.run({ buildId: ref.buildId, startC: ref.startC }, () => this.store(ref, verified))
  }

  /** Write one entry now (call only with verified bytes) and index it; 'exists' when it already is. */
  store(ref: FrameRef, verified: Uint8Array): Promise<SharedWriteResult> {
    if (this.index.has(ref)) return Promise.resolve('exists')
    const path = this.entryPath(ref)
    const running = this.storing.get(path)
    if (running) return running.then(() => 'exists')
    const write = this.write(ref, path, verified).finally(() => this.storing.delete(path))
    this.storing.set(path, write)
    return write
  }

  private async write(ref: FrameRef, path: string, verified: Uint8Array): Promise<SharedWriteResult> {
    const unpin = this.index.pin(ref.buildId)
    try {
      await this.deleting.get(ref.buildId) // an eviction of this build finishes before it is written again
      // No fsync per frame: every entry is verified again before it is served (readVerified) or read
      // back by the fetcher, so a crash leaves at worst a short or corrupt entry, which that check removes.
      await publishOwnEntry(path, verified)
      this.indexFile(ref)
      return 'written'
    } finally {
      unpin()
    }
  }

  async remove(ref: FrameRef): Promise<void> {
    this.index.unindex(ref)
    await rm(this.entryPath(ref), { force: true })
    this.log.warn({ buildId: ref.buildId, kind: ref.kind, startC: ref.startC }, 'removed corrupt frame store entry')
  }

  readVerified(ref: FrameRef): Promise<Uint8Array | null> {
    return readVerifiedEntry(this, ref)
  }

  present(refs: readonly FrameRef[]): Promise<boolean> {
    return presentEntries(this, refs)
  }

  async idle(): Promise<void> {
    await this.writes.idle()
    for (;;) {
      await this.index.idle()
      if (this.deleting.size === 0 && this.removing.size === 0) return
      await Promise.all([...this.deleting.values(), ...this.removing])
    }
  }

  /** Index an entry on disk; one of a forbidden build (written while it was dropped) is deleted instead. */
  private indexFile(ref: FrameRef): void {
    if (!this.index.add(ref)) void rm(this.entryPath(ref), { force: true }).catch(() => {})
  }

  /** The index let frames go: their files go too (a whole build's directory, or the frames of a replaced content). */
  private deleteFiles(buildId: BuildId, frames: readonly FrameRef[], why: DropReason): Promise<void> | undefined {
    if (why === 'replaced') {
      const gone = Promise.all(frames.map((f) => rm(this.entryPath(f), { force: true })))
        .then(() => {})
        .catch((err: unknown) => this.log.warn({ err, buildId }, 'frame store could not delete frames of another content'))
        .finally(() => this.removing.delete(gone))
      this.removing.add(gone)
      return gone
    }
    if (this.deleting.has(buildId)) return undefined
    const gone = rm(join(this.dir, buildId), { recursive: true, force: true, maxRetries: 3 })
      .catch((err: unknown) => this.log.warn({ err, buildId }, 'frame store could not delete a build'))
      .finally(() => this.deleting.delete(buildId))
    this.deleting.set(buildId, gone)
    return gone
  }
}
