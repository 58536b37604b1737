/**
 * What this node has learnt about other nodes' builds from the cluster: a USE_STORAGE answer or an
 * "uploaded" announcement means the upload finished; UPLOAD_FAILED means it never will. Resumed files
 * consult this board when a pending read fails, and watch it to switch over proactively.
 *
 * Bounded in a long-running node: a build nobody read or updated for `ttlMs` is forgotten, and past
 * `maxBuilds` the least recently used go first. A build with an open file (a watcher) is never
 * forgotten: its reads depend on the failed state (a clear error at once instead of a switchover poll)
 * and on the holders that serve its frames. What is forgotten the cluster tells again when asked (a
 * peer answers UPLOAD_FAILED or USE_STORAGE; a finished build's header is in storage).
 */
import type { BuildId, BuildState, UploadState } from '../format/types.ts'

export interface BuildStatusOptions {
  /** An entry not read or updated for this long is forgotten unless the build is watched (default BUILD_STATUS_TTL_MS). */
  readonly ttlMs?: number
  /** Unwatched entries kept at most (default MAX_BUILD_STATUSES). */
  readonly maxBuilds?: number
  /** Told of every state change, whatever its source (the frame store drops builds that failed). */
  readonly onState?: (id: BuildId, state: UploadState) => void
}

/** Far beyond the announcement TTL and the switchover poll: nobody still waits on a build this idle. */
export const BUILD_STATUS_TTL_MS = 15 * 60_000
/** A node sees far fewer builds than this within the TTL; the cap only bounds a flood of announcements. */
export const MAX_BUILD_STATUSES = 16_384
/** Expired entries are swept at most this often (each lookup also checks its own entry). */
const MAX_SWEEP_INTERVAL_MS = 10_000

interface Entry {
  state?: UploadState
  /** Peers known to hold the build without (yet) announcing it: the one that served us its pending header. */
  holders?: Set<string>
  touched: number
}

type Listener = (state: UploadState) => void

function isUploadState(s: BuildState): s is UploadState {
  return s === 'pending' || s === 'uploaded' || s === 'failed'
}

export class BuildStatusBoard {
  /** Least recently used first (every use moves an entry to the end). */
  private readonly entries = new Map<BuildId, Entry>()
  private readonly watchers = new Map<BuildId, Set<Listener>>()
  private readonly ttlMs: number
  private readonly maxBuilds: number
  private readonly sweepEveryMs: number
  private readonly onState: BuildStatusOptions['onState']
  private nextSweep = 0

  constructor(opts: BuildStatusOptions = {}) {
    this.ttlMs = opts.ttlMs ?? BUILD_STATUS_TTL_MS
    this.maxBuilds = opts.maxBuilds ?? MAX_BUILD_STATUSES
    this.sweepEveryMs = Math.min(MAX_SWEEP_INTERVAL_MS, this.ttlMs / 4)
    this.onState = opts.onState
  }

  addHolder(id: BuildId, peer: string): void {
    const e = this.use(id, true)!
    e.holders ??= new Set<string>()
    e.holders.add(peer)
  }

  /** `peer` left (its last connection closed): it is no holder of anything until it says so again. */
  dropHolder(peer: string): void {
    for (const e of this.entries.values()) e.holders?.delete(peer)
  }

  holdersOf(id: BuildId): readonly string[] {
    return [...(this.use(id)?.holders ?? [])]
  }

  get(id: BuildId): UploadState | undefined {
    return this.use(id)?.state
  }

  /**
   * Record a state, told by anyone (the origin, an announcement, a peer's answer): the one place a
   * build state becomes a board entry. `framing` and `cached` say nothing about the upload and are
   * ignored; terminal states (uploaded, failed) are never downgraded to pending.
   */
  set(id: BuildId, state: BuildState): void {
    if (!isUploadState(state)) return
    const e = this.use(id, true)!
    const prev = e.state
    if (prev === state || (prev !== undefined && prev !== 'pending' && state === 'pending')) return
    e.state = state
    this.onState?.(id, state)
    for (const l of [...(this.watchers.get(id) ?? [])]) l(state)
  }

  /** Call `listener` on every state change of `id`; the build is kept on the board until unwatched. */
  watch(id: BuildId, listener: Listener): () => void {
    const set = this.watchers.get(id) ?? new Set<Listener>()
    this.watchers.set(id, set)
    set.add(listener)
    return () => {
      set.delete(listener)
      if (set.size === 0 && this.watchers.get(id) === set) {
        // The expiry clock of an unwatched build starts now, not at its last update: used while still watched.
        this.use(id)
        this.watchers.delete(id)
      }
    }
  }

  /** Builds on the board (watched ones included). */
  get size(): number {
    return this.entries.size
  }

  /** The live entry of `id`, marked used now; created when `create`. */
  private use(id: BuildId, create = false): Entry | undefined {
    const now = performance.now()
    if (now >= this.nextSweep) this.sweep(now)
    let e = this.entries.get(id)
    if (e && this.expired(id, e, now)) e = undefined
    this.entries.delete(id)
    if (!e && !create) return undefined
    e ??= { touched: now }
    e.touched = now
    this.entries.set(id, e)
    if (this.entries.size > this.maxBuilds) this.evictLeastRecent(id)
    return e
  }

  private expired(id: BuildId, e: Entry, now: number): boolean {
    return now - e.touched > this.ttlMs && !this.watchers.has(id)
  }

  /** Entries are in order of last use, so the sweep stops at the first unexpired unwatched one. */
  private sweep(now: number): void {
    this.nextSweep = now + this.sweepEveryMs
    for (const [id, e] of this.entries) {
      if (this.watchers.has(id)) continue
      if (!this.expired(id, e, now)) return
      this.entries.delete(id)
    }
  }

  /** Over the cap: drop the least recently used unwatched entries, never `keep` (the one in use). */
  private evictLeastRecent(keep: BuildId): void {
    for (const id of this.entries.keys()) {
      if (this.entries.size <= this.maxBuilds) return
      if (id !== keep && !this.watchers.has(id)) this.entries.delete(id)
    }
  }
}

/**
 * Whether connected peers can serve a build to a node that does not hold it (`GET /v1/builds/{id}`
 * lists `peers` as a place to read from only then): a peer announcing it `pending` serves the header
 * and every frame; peers that hold frames (`cached`, or `uploaded` at its origin) serve frames but
 * never a header, so they count only when the header is in storage. A `failed` origin counts never.
 * `peers` must already be the live ones (the directory returns only connected peers).
 */
export function peersCanServe(peers: readonly { state: string }[], headerStored: boolean): boolean {
  if (peers.some((p) => p.state === 'pending')) return true
  return headerStored && peers.some((p) => p.state === 'cached' || p.state === 'uploaded')
}
