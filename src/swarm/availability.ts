/**
 * Frame-level availability: which frames of which build files this node and each of its peers hold
 * or are fetching right now. Pure bookkeeping (no I/O; time through `now`): the node's read path
 * feeds it (a file opened, a fetch started, a verified frame arrived), the have protocol
 * (src/p2p/content/have.ts) carries its outgoing messages to peers and applies theirs, and frame
 * source selection (select.ts) reads it.
 *
 * Files are indexed by their frame table: frame i is the table's i-th frame, and a peer's state
 * counts only for a file with the same table id (have-message.ts). Everything is bounded: local
 * files (MAX_LOCAL_FILES), peers (MAX_PEERS), files per peer (MAX_FILES_PER_PEER), each bitfield by
 * its table's length; a "fetching" mark expires after FETCHING_TTL_MS, so a node that dies mid-fetch
 * (or a lost message) never leaves others waiting on it for long.
 */
import type { FrameTable } from '../format/frame-table.ts'
import type { BuildId, CodecName, FileKind } from '../format/types.ts'
import { FrameBitfield } from './bitfield.ts'
import { type HaveFile, type HaveMessage, MAX_HAVE_DELTA, tableIdOf } from './have-message.ts'
import { frameKey, type SourceCandidate } from './select.ts'

export const MAX_LOCAL_FILES = 256
export const MAX_PEERS = 1024
export const MAX_FILES_PER_PEER = 256
/** A frame marked as being fetched (here or by a peer) counts as such for this long at most. */
export const FETCHING_TTL_MS = 15_000

/** A frame as the read path names it (structurally a FrameRef of src/read/source.ts). */
export interface FrameAt {
  readonly buildId: BuildId
  readonly kind: FileKind
  readonly codec: CodecName
  readonly startC: number
  readonly sizeC: number
}

/** A frame of a file this node indexes. */
export interface Located {
  readonly file: HaveFile
  readonly index: number
  /** The frame's name in the swarm (select.ts frameKey). */
  readonly key: string
}

interface LocalFile {
  readonly file: HaveFile
  readonly table: FrameTable
  readonly content: string | undefined
  readonly byStartC: Map<number, number>
  readonly held: FrameBitfield
  /** Frame index → when this node started fetching it. */
  readonly fetching: Map<number, number>
  /** When the file was registered (opened). */
  readonly since: number
}

interface RemoteFile {
  held: FrameBitfield
  /** Frame index → when the peer said it started fetching it. */
  readonly fetching: Map<number, number>
}

interface Outgoing {
  full: boolean
  readonly held: Set<number>
  readonly fetching: Set<number>
  readonly done: Set<number>
}

type Waiter = (bytes: Uint8Array | null) => void

/**
 * Wait in `table` under `key` until a caller of one of its waiters settles it, or `ms` pass, or
 * `signal` aborts (then `none`). A settled or timed-out waiter leaves the table; an empty set goes.
 */
function waitIn<T>(table: Map<string, Set<(v: T) => void>>, key: string, none: T, ms: number, signal: AbortSignal | undefined): Promise<T> {
  return new Promise((resolve) => {
    const ws = table.get(key) ?? new Set<(v: T) => void>()
    table.set(key, ws)
    const done = (v: T) => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      ws.delete(done)
      if (ws.size === 0 && table.get(key) === ws) table.delete(key)
      resolve(v)
    }
    const onAbort = () => done(none)
    const timer = setTimeout(() => done(none), ms)
    signal?.addEventListener('abort', onAbort, { once: true })
    ws.add(done)
    if (signal?.aborted) done(none)
  })
}

const localKey = (buildId: BuildId, kind: FileKind) => `${buildId}/${kind}`
const remoteKey = (f: Pick<HaveFile, 'buildId' | 'kind' | 'tableId'>) => `${f.buildId}/${f.kind}/${f.tableId}`

export class SwarmAvailability {
  readonly self: string
  private readonly now: () => number
  private readonly local = new Map<string, LocalFile>()
  private readonly peers = new Map<string, Map<string, RemoteFile>>()
  private readonly outgoing = new Map<string, Outgoing>()
  private readonly waiters = new Map<string, Set<Waiter>>()
  private readonly fileWaiters = new Map<string, Set<(ok: boolean) => void>>()
  private readonly listeners = new Set<() => void>()
  /** The last few verified arrivals (frame key → stored bytes), for a peer that asks before they are on disk. */
  private readonly recent = new Map<string, Uint8Array>()
  private readonly keepRecent: number

  /**
   * `now`: ms on a monotonic clock (performance.now by default; a simulation passes its own).
   * `keepRecent`: verified arrivals kept in memory (0 = none).
   */
  constructor(self: string, now: () => number = () => performance.now(), keepRecent = 0) {
    this.self = self
    this.now = now
    this.keepRecent = keepRecent
  }

  /** The stored bytes of a frame that arrived lately, if still kept (see keepRecent). */
  recentBytes(at: Located): Uint8Array | undefined {
    return this.recent.get(at.key)
  }

  /** A build file this node reads, by the frame table its header gives; peers hear of it (a full message). */
  register(buildId: BuildId, kind: FileKind, table: FrameTable, content?: string): HaveFile | undefined {
    if (table.codec === 'none' || table.frames.length === 0) return undefined
    const key = localKey(buildId, kind)
    const tableId = tableIdOf(table)
    const old = this.local.get(key)
    if (old?.file.tableId === tableId) return old.file
    const file: HaveFile = { buildId, kind, tableId, frameCount: table.frames.length }
    const byStartC = new Map<number, number>()
    for (const [i, f] of table.frames.entries()) byStartC.set(f.startC, i)
    this.local.delete(key)
    this.local.set(key, { file, table, content, byStartC, held: new FrameBitfield(file.frameCount), fetching: new Map(), since: this.now() })
    if (this.local.size > MAX_LOCAL_FILES) this.local.delete(this.local.keys().next().value!)
    this.queue(key).full = true
    this.notify()
    return file
  }

  /** The indexed frame `ref` names (same codec and compressed range), if any. */
  locate(ref: FrameAt): Located | undefined {
    const l = this.local.get(localKey(ref.buildId, ref.kind))
    if (!l || l.table.codec !== ref.codec) return undefined
    const index = l.byStartC.get(ref.startC)
    if (index === undefined || l.table.frames[index].sizeC !== ref.sizeC) return undefined
    return { file: l.file, index, key: frameKey(l.file.buildId, l.file.kind, l.file.tableId, index) }
  }

  /** The full description of an indexed frame (for fetching it on a peer's behalf). */
  refAt(at: Located): (FrameAt & { startU: number; sizeU: number; content?: string }) | undefined {
    const l = this.local.get(localKey(at.file.buildId, at.file.kind))
    if (!l || l.file.tableId !== at.file.tableId) return undefined
    const f = l.table.frames[at.index]
    return { buildId: at.file.buildId, kind: at.file.kind, codec: l.table.codec, startU: f.startU, sizeU: f.sizeU, startC: f.startC, sizeC: f.sizeC, content: l.content }
  }

  /** How long ago the frame's file was registered (ms); Infinity if it is not. */
  age(at: Located): number {
    const l = this.localOf(at)
    return l ? this.now() - l.since : Number.POSITIVE_INFINITY
  }

  /**
   * Resolves true when a peer says anything about the frame's file (it reads it too), false after `ms`
   * or on abort.
   */
  whenPeerIndexes(at: Located, ms: number, signal?: AbortSignal): Promise<boolean> {
    return waitIn(this.fileWaiters, remoteKey(at.file), false, ms, signal)
  }

  /** This node holds the frame (a verified copy arrived). */
  holds(at: Located): boolean {
    return this.localOf(at)?.held.has(at.index) ?? false
  }

  /** This node is fetching the frame now (and the mark has not expired). */
  fetching(at: Located): boolean {
    const l = this.localOf(at)
    const since = l?.fetching.get(at.index)
    if (since === undefined) return false
    if (this.now() - since < FETCHING_TTL_MS) return true
    this.stopFetching(at)
    return false
  }

  /** Mark the frame as being fetched by this node (peers hear of it); false if it already was. */
  startFetching(at: Located): boolean {
    const l = this.localOf(at)
    if (!l || l.held.has(at.index) || this.fetching(at)) return false
    l.fetching.set(at.index, this.now())
    const o = this.queue(localKey(at.file.buildId, at.file.kind))
    o.fetching.add(at.index)
    o.done.delete(at.index)
    this.notify()
    return true
  }

  /** The fetch ended without the frame (every source failed): peers stop waiting on us for it. */
  stopFetching(at: Located): void {
    const l = this.localOf(at)
    if (!l?.fetching.delete(at.index)) return
    const o = this.queue(localKey(at.file.buildId, at.file.kind))
    o.fetching.delete(at.index)
    o.done.add(at.index)
    this.notify()
  }

  /**
   * A VERIFIED copy of `ref` arrived (stored bytes): the frame is held now, whoever waits for it gets
   * the bytes, peers hear of it.
   */
  arrived(ref: FrameAt, stored: Uint8Array): void {
    const at = this.locate(ref)
    if (!at) return
    const l = this.localOf(at)!
    const wasFetching = l.fetching.delete(at.index)
    const newly = l.held.set(at.index)
    const o = this.queue(localKey(at.file.buildId, at.file.kind))
    if (newly) o.held.add(at.index)
    if (wasFetching) {
      o.fetching.delete(at.index)
      o.done.add(at.index)
    }
    if (this.keepRecent > 0) {
      this.recent.delete(at.key)
      this.recent.set(at.key, stored)
      if (this.recent.size > this.keepRecent) this.recent.delete(this.recent.keys().next().value!)
    }
    const ws = this.waiters.get(at.key)
    this.waiters.delete(at.key)
    for (const w of ws ?? []) w(stored)
    if (newly || wasFetching) this.notify()
  }

  /**
   * This node no longer holds any frame of the build (its frame store dropped it): peers get a full
   * message (a delta only ever adds held frames).
   */
  dropHeld(buildId: BuildId): void {
    let changed = false
    for (const [key, l] of this.local) {
      if (l.file.buildId !== buildId || l.held.count === 0) continue
      for (const i of [...l.held.indices()]) l.held.clear(i)
      for (const k of [...this.recent.keys()]) if (k.startsWith(`${buildId}/`)) this.recent.delete(k)
      this.queue(key).full = true
      changed = true
    }
    if (changed) this.notify()
  }

  /**
   * The verified stored bytes of the frame when it arrives here, or null after `ms` (or on abort).
   * Registered before the caller starts a fetch, so an arrival in between is never missed.
   */
  whenArrived(at: Located, ms: number, signal?: AbortSignal): Promise<Uint8Array | null> {
    return waitIn(this.waiters, at.key, null, ms, signal)
  }

  /** Peers that index the frame's file, with what they hold and fetch of it (load and penalty 0: the caller's). */
  candidates(at: Located, connected: readonly string[]): SourceCandidate[] {
    const out: SourceCandidate[] = []
    const key = remoteKey(at.file)
    for (const peer of connected) {
      const r = this.peers.get(peer)?.get(key)
      if (!r) continue
      out.push({ peer, holds: r.held.has(at.index), fetching: this.remoteFetching(r, at.index), load: 0, penalty: 0 })
    }
    return out
  }

  /** Nodes reading the frame's file: the connected peers that index it, and this node. */
  members(at: Located, connected: readonly string[]): string[] {
    const key = remoteKey(at.file)
    return [this.self, ...connected.filter((p) => p !== this.self && this.peers.get(p)?.has(key))]
  }

  /** Whether `peer` said anything about `file` (it reads it too): deltas go only to such peers. */
  peerIndexes(peer: string, file: Pick<HaveFile, 'buildId' | 'kind' | 'tableId'>): boolean {
    return this.peers.get(peer)?.has(remoteKey(file)) ?? false
  }

  /** Take a peer's message (decoded and checked: have-message.ts). */
  apply(peer: string, m: HaveMessage): void {
    if (peer === this.self) return
    let files = this.peers.get(peer)
    if (!files) {
      files = new Map()
      this.peers.set(peer, files)
      if (this.peers.size > MAX_PEERS) this.peers.delete(this.peers.keys().next().value!)
    }
    const key = remoteKey(m)
    let r = files.get(key)
    if (m.shape === 'full') {
      r = { held: m.held, fetching: new Map() }
      for (const i of m.fetching.indices()) r.fetching.set(i, this.now())
    } else {
      r ??= { held: new FrameBitfield(m.frameCount), fetching: new Map() }
      if (r.held.length !== m.frameCount) return // the same table id always has the same length; a liar gets ignored
      for (const i of m.held) r.held.set(i)
      for (const i of m.done) r.fetching.delete(i)
      for (const i of m.fetching) if (!r.held.has(i)) r.fetching.set(i, this.now())
    }
    files.delete(key)
    files.set(key, r)
    if (files.size > MAX_FILES_PER_PEER) files.delete(files.keys().next().value!)
    for (const w of [...(this.fileWaiters.get(key) ?? [])]) w(true)
  }

  /** A peer left: forget everything it said. */
  forgetPeer(peer: string): void {
    this.peers.delete(peer)
  }

  /** Called when there is something to send (the have protocol schedules a push). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** The changes since the last call, one message per file (a full one where a delta would be too long). */
  takeOutgoing(): HaveMessage[] {
    const out: HaveMessage[] = []
    for (const [key, o] of this.outgoing) {
      const l = this.local.get(key)
      if (!l) continue
      const long = Math.max(o.held.size, o.fetching.size, o.done.size) > MAX_HAVE_DELTA
      if (o.full || long) out.push(this.fullOf(l))
      else out.push({ ...l.file, shape: 'delta', held: [...o.held], fetching: [...o.fetching], done: [...o.done] })
    }
    this.outgoing.clear()
    return out
  }

  /** Everything this node indexes, as full messages (for a peer that just connected). */
  fullState(): HaveMessage[] {
    return [...this.local.values()].map((l) => this.fullOf(l))
  }

  private fullOf(l: LocalFile): HaveMessage {
    const fetching = new FrameBitfield(l.file.frameCount)
    const now = this.now()
    for (const [i, since] of l.fetching) if (now - since < FETCHING_TTL_MS) fetching.set(i)
    const held = FrameBitfield.fromBytes(l.file.frameCount, l.held.toBytes())
    return { ...l.file, shape: 'full', held, fetching }
  }

  private remoteFetching(r: RemoteFile, index: number): boolean {
    const since = r.fetching.get(index)
    if (since === undefined) return false
    if (this.now() - since < FETCHING_TTL_MS) return true
    r.fetching.delete(index)
    return false
  }

  private localOf(at: Located): LocalFile | undefined {
    const l = this.local.get(localKey(at.file.buildId, at.file.kind))
    return l && l.file.tableId === at.file.tableId ? l : undefined
  }

  private queue(key: string): Outgoing {
    const o = this.outgoing.get(key) ?? { full: false, held: new Set<number>(), fetching: new Set<number>(), done: new Set<number>() }
    this.outgoing.set(key, o)
    return o
  }

  private notify(): void {
    for (const l of [...this.listeners]) l()
  }
}
