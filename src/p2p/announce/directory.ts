/**
 * What the cluster says it can serve: for each peer, the builds it announced, until the announcement
 * expires, is replaced, or the peer disconnects. Answers "which peers announce build X"
 * for the read path and reports every change (a build appearing at a peer, changing state — e.g.
 * pending → uploaded, the switchover signal — or disappearing) to subscribers.
 *
 * Expiry uses one timer, armed for the earliest deadline, so changes are reported on time without a
 * per-entry timer or a polling loop.
 */
import type { BuildId } from '../../format/types.ts'
import type { AnnouncedState, BuildAnnouncement } from '../wire/messages.ts'

export interface PeerEntry extends BuildAnnouncement {
  peer: string
}

export interface DirectoryChange {
  peer: string
  buildId: BuildId
  /** undefined = the peer did not announce the build before. */
  previous?: AnnouncedState
  /** undefined = withdrawn, expired or the peer disconnected. */
  current?: AnnouncedState
  /** The new announcement, when there is one. */
  entry?: BuildAnnouncement
}

interface PeerRecord {
  expiresAt: number
  builds: Map<BuildId, BuildAnnouncement>
}

/**
 * Pending announcers first: during an upload only they hold the build. A `failed` announcer (the
 * origin of an upload that failed) last: it may still serve frames of its local copy, and it is the
 * one that answers UPLOAD_FAILED with certainty.
 */
const STATE_ORDER: Record<AnnouncedState, number> = { pending: 0, cached: 1, uploaded: 2, failed: 3 }

export interface PeerDirectoryOptions {
  /** Whether `peer` can be asked now (connected); entries of other peers are kept but never returned. */
  isLive?: (peer: string) => boolean
}

export class PeerDirectory {
  private readonly isLive: (peer: string) => boolean
  private readonly peers = new Map<string, PeerRecord>()
  private readonly byBuild = new Map<BuildId, Set<string>>()
  private readonly listeners = new Set<(change: DirectoryChange) => void>()
  private timer: NodeJS.Timeout | undefined

  constructor(opts: PeerDirectoryOptions = {}) {
    this.isLive = opts.isLive ?? (() => true)
  }

  /** Replace everything `peer` announced with `builds`, valid for `ttlMs` from now. */
  replace(peer: string, builds: readonly BuildAnnouncement[], ttlMs: number): void {
    const before = this.peers.get(peer)?.builds ?? new Map<BuildId, BuildAnnouncement>()
    const after = new Map(builds.map((b) => [b.buildId, b]))
    if (after.size === 0) this.peers.delete(peer)
    else this.peers.set(peer, { expiresAt: Date.now() + ttlMs, builds: after })
    this.reindex(peer, before, after)
    this.rearm()
  }

  /** Forget `peer` (disconnected): each of its builds is reported withdrawn. */
  removePeer(peer: string): void {
    if (this.peers.has(peer)) this.replace(peer, [], 0)
  }

  /** Live peers announcing `buildId`, pending first; expired entries and peers not reachable now are never returned. */
  peersFor(buildId: BuildId): PeerEntry[] {
    const now = Date.now()
    const out: PeerEntry[] = []
    for (const peer of this.byBuild.get(buildId) ?? []) {
      const rec = this.peers.get(peer)
      const entry = rec?.builds.get(buildId)
      if (rec && entry && rec.expiresAt > now && this.isLive(peer)) out.push({ peer, ...entry })
    }
    return out.sort((a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state])
  }

  /** Builds announced by anyone (for /v1/peers-style introspection). */
  builds(): BuildId[] {
    return [...this.byBuild.keys()]
  }

  /** `listener` sees every change until the returned function is called. */
  subscribe(listener: (change: DirectoryChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Drop every entry and the expiry timer (node shutdown); no changes are reported. */
  clear(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.peers.clear()
    this.byBuild.clear()
  }

  private reindex(peer: string, before: Map<BuildId, BuildAnnouncement>, after: Map<BuildId, BuildAnnouncement>): void {
    for (const [id, old] of before) {
      if (after.has(id)) continue
      const set = this.byBuild.get(id)
      set?.delete(peer)
      if (set?.size === 0) this.byBuild.delete(id)
      this.emit({ peer, buildId: id, previous: old.state })
    }
    for (const [id, entry] of after) {
      const set = this.byBuild.get(id) ?? new Set<string>()
      this.byBuild.set(id, set.add(peer))
      const previous = before.get(id)?.state
      if (previous !== entry.state) this.emit({ peer, buildId: id, previous, current: entry.state, entry })
    }
  }

  private emit(change: DirectoryChange): void {
    for (const fn of this.listeners) {
      try {
        fn(change)
      } catch {
        // A subscriber's bug must not corrupt the directory or starve the other subscribers.
      }
    }
  }

  private rearm(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    let next = Number.POSITIVE_INFINITY
    for (const rec of this.peers.values()) next = Math.min(next, rec.expiresAt)
    if (next === Number.POSITIVE_INFINITY) return
    this.timer = setTimeout(() => this.expire(), Math.max(0, next - Date.now()) + 1)
    this.timer.unref()
  }

  private expire(): void {
    const now = Date.now()
    for (const [peer, rec] of this.peers) if (rec.expiresAt <= now) this.replace(peer, [], 0)
    this.rearm()
  }
}
