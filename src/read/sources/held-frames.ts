/**
 * What a node serves to peers and announces as `cached` (src/cluster/cached-frames.ts): frames it
 * holds on disk, listed in a FrameIndex. Two stores hold frames this way: the node's own frame store
 * (frame-store.ts) and, when the cluster shares a frame directory, the tracked shared cache
 * (shared-cache.ts). This module is what they share: the interface, re-verified reads for peers, and
 * the fetcher's "held frames first" view.
 *
 * A frame read for a peer (`readVerified`) is verified again before it leaves: disks rot, and a peer
 * must only ever get the bytes that were verified when stored. A short or corrupt entry is removed.
 */
import { open, stat } from 'node:fs/promises'
import type { BuildId } from '../../format/types.ts'
import type { Logger } from '../../obs/log.ts'
import { readUpTo } from '../../util/file-io.ts'
import type { FrameStoreMetrics } from '../metrics.ts'
import type { FrameRef, FrameSource } from '../source.ts'
import { verifyFrame } from '../verify.ts'
import type { FrameIndex } from './frame-index.ts'

export interface HeldFrames extends FrameSource {
  /** Which frames of which builds are held: what peers may ask for. */
  readonly index: FrameIndex
  fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null>
  remove(ref: FrameRef): Promise<void>
  /** All of an entry's stored bytes, checked: exact size and the codec's own checksum. null = not servable. */
  readVerified(ref: FrameRef): Promise<Uint8Array | null>
  /** Files present with the exact stored size (cheap: no read); a mismatch is discarded. */
  present(refs: readonly FrameRef[]): Promise<boolean>
  /** Background writes and deletions have ended (tests, shutdown). */
  idle(): Promise<void>
}

/** What the shared checks below need of a store. */
export interface EntryChecks {
  readonly index: FrameIndex
  readonly metrics: FrameStoreMetrics
  readonly log: Logger
  entryPath(ref: FrameRef): string
  remove(ref: FrameRef): Promise<void>
}

/** `HeldFrames.readVerified` over a store's files. */
export async function readVerifiedEntry(s: EntryChecks, ref: FrameRef): Promise<Uint8Array | null> {
  let fh: Awaited<ReturnType<typeof open>>
  try {
    fh = await open(s.entryPath(ref), 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') s.log.warn({ err, buildId: ref.buildId }, 'frame store read failed')
    s.index.unindex(ref) // gone (or unreadable): stop offering it
    return null
  }
  try {
    const found = (await fh.stat()).size
    const buf = Buffer.allocUnsafe(ref.sizeC)
    const n = found === ref.sizeC ? await readUpTo(fh, buf, 0) : 0
    if (found !== ref.sizeC || n !== ref.sizeC) {
      await discardEntry(s, ref, `expected ${ref.sizeC} bytes, found ${found}`)
      return null
    }
    try {
      await verifyFrame(ref, buf)
    } catch (err) {
      await discardEntry(s, ref, (err as Error).message)
      return null
    }
    s.index.touch(ref.buildId)
    return buf
  } catch (err) {
    s.log.warn({ err, buildId: ref.buildId }, 'frame store read failed')
    return null
  } finally {
    await fh.close()
  }
}

/** `HeldFrames.present` over a store's files. */
export async function presentEntries(s: EntryChecks, refs: readonly FrameRef[]): Promise<boolean> {
  for (const ref of refs) {
    const size = await stat(s.entryPath(ref)).then((st) => st.size, () => -1)
    if (size === ref.sizeC) continue
    if (size < 0) s.index.unindex(ref)
    else await discardEntry(s, ref, `expected ${ref.sizeC} bytes, found ${size}`)
    return false
  }
  return true
}

async function discardEntry(s: EntryChecks, ref: FrameRef, why: string): Promise<void> {
  s.metrics.corrupt.inc()
  s.log.warn({ buildId: ref.buildId, kind: ref.kind, startC: ref.startC, why }, 'frame store entry failed verification; removed')
  await s.remove(ref).catch((err: unknown) => s.log.warn({ err }, 'could not remove a corrupt frame store entry'))
}

/**
 * The held frames asked first, before peers: local disk instead of a network round trip. It answers
 * only those (from the index, no syscall otherwise) and never for a build `askPeersFirst` names (one
 * that may be pending: its origin is asked first, the store stays the fallback after peers). Counted
 * under the store's own name; its bytes are not offered back to it.
 */
export function heldFramesFirst(
  store: Pick<HeldFrames, 'name' | 'fetch' | 'remove'> & { readonly index: Pick<FrameIndex, 'has'> },
  askPeersFirst: (buildId: BuildId) => boolean): FrameSource {
  return {
    name: store.name,
    viewOf: store,
    fetch: (ref, signal) => (store.index.has(ref) && !askPeersFirst(ref.buildId) ? store.fetch(ref, signal) : Promise.resolve(null)),
    remove: (ref) => store.remove(ref),
  }
}
