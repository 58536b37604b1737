/**
 * Announcements (docs/ARCHITECTURE.md, "Wire protocols"): this node pushes its complete list of builds (those it can serve, and
 * those whose upload failed here) to every connected peer — on connect, shortly after every local
 * change, and every `intervalMs` as a refresh — and peers' pushes fill the local `PeerDirectory`.
 * Entries expire `ttlMs` after the last refresh, so a node that vanishes without a goodbye is
 * forgotten; on stop an empty list withdraws everything at once. Push, not pull: the pending →
 * uploaded (or → failed) transition reaches readers within the debounce delay. Membership
 * (membership.ts) connects every member to every other, so a direct push reaches the whole cluster
 * and the receiver knows the origin for certain (the sender of an authenticated connection).
 *
 * Ordering: pushes travel on separate streams and may be processed out of order. Each carries
 * (incarnation, seq): the incarnation is the sender's start time, seq counts its pushes. A receiver
 * applies a push only if it is newer than the last it applied from that sender, so a stale list never
 * overrides a newer one, and a restarted sender (a later incarnation) is never stuck behind the
 * sequence numbers of its previous run.
 */
import { PEER_DEFAULTS } from '../../config/schema.ts'
import type { BuildId } from '../../format/types.ts'
import { type Logger, silentLogger } from '../../obs/log.ts'
import { CoarseTimer } from '../../util/coarse-timer.ts'
import * as C from '../constants.ts'
import type { PeerHost } from '../host.ts'
import * as M from '../wire/messages.ts'
import { pushMessage, receivePushed } from '../push.ts'
import type { RawStream } from '../wire/stream.ts'
import type { PeerDirectory } from './directory.ts'

/** Order of entries in a push: a reader's best sources first (a stable sort keeps the rest in order). */
const PUSH_ORDER: Record<M.AnnouncedState, number> = { pending: 0, uploaded: 1, failed: 2, cached: 3 }

export interface AnnounceOptions {
  intervalMs?: number
  ttlMs?: number
  /** Deadline of one push or receipt. */
  timeoutMs?: number
  logger?: Logger
}

export class AnnounceService {
  private readonly host: PeerHost
  private readonly directory: PeerDirectory
  private readonly intervalMs: number
  private readonly ttlMs: number
  private readonly timeoutMs: number
  private readonly log: Logger
  private readonly local = new Map<BuildId, M.BuildAnnouncement>()
  private readonly lastApplied = new Map<string, PushOrder>()
  /** One stall timer for all of this side's streams. */
  private readonly stallTimer = new CoarseTimer(C.WATCHDOG_TICK_MS)
  private readonly incarnation = Date.now()
  private seq = 0
  private started = false
  private interval: NodeJS.Timeout | undefined
  private debounce: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined

  constructor(host: PeerHost, directory: PeerDirectory, opts: AnnounceOptions = {}) {
    this.host = host
    this.directory = directory
    this.intervalMs = opts.intervalMs ?? PEER_DEFAULTS.announceIntervalMs
    this.ttlMs = Math.min(opts.ttlMs ?? PEER_DEFAULTS.announceTtlMs, C.MAX_ANNOUNCE_TTL_MS)
    this.timeoutMs = opts.timeoutMs ?? 5_000
    this.log = (opts.logger ?? silentLogger).child({ component: 'p2p-announce' })
  }

  /** Announce (or update) a build this node can serve; peers hear of it within the debounce delay. */
  announce(a: M.BuildAnnouncement): void {
    this.local.set(a.buildId, { ...a })
    this.changed()
  }

  /** Stop announcing a build (upload done and local copy evicted, or serving stopped). */
  withdraw(buildId: BuildId): void {
    if (this.local.delete(buildId)) this.changed()
  }

  /** What this node announces, builds it originated first (pending first of all), then `cached` ones. */
  announced(): M.BuildAnnouncement[] {
    return [...this.local.values()].sort((a, b) => PUSH_ORDER[a.state] - PUSH_ORDER[b.state])
  }

  async start(): Promise<void> {
    await this.host.handle(C.PROTOCOL_ANNOUNCE, (raw, peer) => void this.receive(raw, peer))
    this.unsubscribe = this.host.onPeerEvent((ev) => {
      if (ev.type === 'connect') void this.pushTo(ev.peer, this.encode(this.announced()))
      else this.forget(ev.peer)
    })
    this.interval = setInterval(() => void this.pushAll(), this.intervalMs).unref()
    this.started = true
  }

  /** Withdraw everything from connected peers (bounded by the push deadline), then stop listening. */
  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.interval)
    clearTimeout(this.debounce)
    this.unsubscribe?.()
    await this.pushAll(this.encode([]))
    await this.host.unhandle(C.PROTOCOL_ANNOUNCE)
    this.stallTimer.stop()
    this.directory.clear()
  }

  private changed(): void {
    if (!this.started || this.debounce) return
    this.debounce = setTimeout(() => {
      this.debounce = undefined
      void this.pushAll()
    }, C.ANNOUNCE_DEBOUNCE_MS).unref()
  }

  private encode(builds: readonly M.BuildAnnouncement[]): Uint8Array {
    return M.Announce.encode({ builds: builds.map(M.announcementToWire), ttlMs: this.ttlMs, seq: ++this.seq, incarnation: this.incarnation })
  }

  private async pushAll(message = this.encode(this.announced())): Promise<void> {
    await Promise.allSettled(this.host.connectedPeers().map((p) => this.pushTo(p, message)))
  }

  private async pushTo(peer: string, message: Uint8Array): Promise<void> {
    const signal = AbortSignal.timeout(this.timeoutMs)
    try {
      await pushMessage(this.host, peer, C.PROTOCOL_ANNOUNCE, message, { signal, stallMs: this.timeoutMs, stallTimer: this.stallTimer })
    } catch (err) {
      // Not fatal: the next refresh retries, and the peer's entries for us expire meanwhile.
      this.log.debug({ peer, err: (err as Error).message }, 'announcement push failed')
    }
  }

  private async receive(raw: RawStream, peer: string): Promise<void> {
    const signal = AbortSignal.timeout(this.timeoutMs)
    try {
      const msg = await receivePushed(raw, decodeAnnounce, C.MAX_ANNOUNCE_BYTES, 'Announce', { signal, stallMs: this.timeoutMs, stallTimer: this.stallTimer })
      this.apply(peer, { incarnation: msg.incarnation, seq: msg.seq }, msg.builds, msg.ttlMs)
    } catch (err) {
      this.log.debug({ peer, err: (err as Error).message }, 'bad announcement')
    }
  }


  /** Take `peer`'s list unless a newer one was applied already; true if applied. */
  apply(peer: string, order: PushOrder, builds: readonly M.BuildAnnouncement[], ttlMs: number): boolean {
    const last = this.lastApplied.get(peer)
    if (last && !isNewer(order, last)) return false // an older push overtaken by a newer one
    this.lastApplied.set(peer, order)
    this.directory.replace(peer, builds, Math.min(ttlMs, C.MAX_ANNOUNCE_TTL_MS))
    return true
  }

  private forget(peer: string): void {
    this.lastApplied.delete(peer)
    this.directory.removePeer(peer)
  }
}

/** Where a push stands in its sender's sequence: the sender's run, then its count within the run. */
export interface PushOrder {
  incarnation: number
  seq: number
}

export function isNewer(a: PushOrder, b: PushOrder): boolean {
  return a.incarnation !== b.incarnation ? a.incarnation > b.incarnation : a.seq > b.seq
}

/** An Announce with every entry validated (a bad entry fails the whole push). */
function decodeAnnounce(buf: Uint8Array): { builds: M.BuildAnnouncement[]; ttlMs: number; seq: number; incarnation: number } {
  const msg = M.decodeAnnounce(buf)
  return { builds: msg.builds.map(M.announcementFromWire), ttlMs: msg.ttlMs, seq: msg.seq, incarnation: msg.incarnation }
}
