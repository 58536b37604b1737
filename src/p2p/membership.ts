/**
 * Cluster membership (docs/ARCHITECTURE.md, "Membership"): a node that reaches any one member learns
 * every other member and connects to it, so the cluster becomes a full mesh whatever its bootstrap
 * graph (a star, a chain). It is a bounded peer-list exchange on `/snapswarm/members/1.0.0`:
 * - on every new connection a node pushes its list to that peer at once: itself with the addresses it
 *   listens on, and every member it is connected to now with that member's own addresses;
 * - every `intervalMs` it pushes the list to a few random connected peers (`fanout`), which spreads a
 *   change through any connected graph in O(log n) rounds without an O(n²) burst of pushes;
 * - a receiver dials each listed member it is not connected to (a few dials at a time, backing off per
 *   member on failure). Two members that learn of each other at once would dial each other and keep two
 *   connections: the one with the smaller peer id dials at once, the other only after a short grace
 *   (MEMBER_DIAL_GRACE_MS), if still not connected by then. The dial is an ordinary dial: the Noise handshake with the cluster key and the
 *   allow-list apply exactly as to a bootstrap peer, so a peer list cannot smuggle in a stranger.
 * A departed member stops being listed (nobody is connected to it) and is forgotten `ttlMs` after the
 * last list that named it. Only connected peers are ever listed, so a list is never older than the
 * connections of the node that sent it.
 *
 * Everything from outside is bounded before use: the message size, the number of members
 * (MAX_MEMBERS) and of addresses per member (MAX_MEMBER_ADDRS), and each address's length.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { MemberList } from '../../protocols/snapswarm.js'
import { CLUSTER_DEFAULTS } from '../config/schema.ts'
import { type Logger, silentLogger } from '../obs/log.ts'
import { type Counter, counter, createRegistry, Gauge, type Registry } from '../obs/metrics.ts'
import { CoarseTimer } from '../util/coarse-timer.ts'
import * as C from './constants.ts'
import type { PeerHost } from './host.ts'
import { RateLimitedLog, WARN_INTERVAL_MS } from './rate-limited-log.ts'
import { pushMessage, receivePushed } from './push.ts'
import type { RawStream } from './wire/stream.ts'

/** What membership needs of the libp2p node besides the protocol surface. */
export interface MembershipHost extends PeerHost {
  /** Connect to `addr` (ending in /p2p/<id>); resolves with the remote peer id. */
  dial(addr: string, signal?: AbortSignal): Promise<string>
  isConnected(peer: string): boolean
  /** This node's listening addresses, each ending in /p2p/<own id>. */
  addrs(): string[]
}

export interface MembershipOptions {
  /** Periodic push to `fanout` random connected peers (default CLUSTER_DEFAULTS.memberIntervalMs). */
  intervalMs?: number
  /** A member nobody listed for this long and not connected is forgotten (default CLUSTER_DEFAULTS.memberTtlMs). */
  ttlMs?: number
  /** Connected peers at most: no member is dialled beyond this (default MAX_MEMBERS). */
  maxPeers?: number
  /** Peers each periodic push goes to (default MEMBER_FANOUT). */
  fanout?: number
  /** Deadline of one push, receipt or dial. */
  timeoutMs?: number
  /** One warn line per member per this interval about failed dials (default WARN_INTERVAL_MS). */
  warnIntervalMs?: number
  /** Gauges of known and connected members, counter of failed member dials. */
  registry?: Registry
  logger?: Logger
}

export interface MemberInfo {
  peer: string
  addrs: string[]
  connected: boolean
}

interface Known {
  addrs: string[]
  /** When a list (or the member itself) last named it. */
  seenAt: number
  failures: number
  nextDialAt: number
  dialing: boolean
}

export class Membership {
  private readonly host: MembershipHost
  private readonly opts: Required<Omit<MembershipOptions, 'logger' | 'registry'>>
  private readonly dialFailures: Counter
  private readonly log: Logger
  private readonly warn: RateLimitedLog
  private readonly known = new Map<string, Known>()
  private readonly stallTimer = new CoarseTimer(C.WATCHDOG_TICK_MS)
  private readonly stopper = new AbortController()
  private readonly listeners = new Set<() => void>()
  private dialsInFlight = 0
  private interval: NodeJS.Timeout | undefined
  private graceTimer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined
  private started = false

  constructor(host: MembershipHost, opts: MembershipOptions = {}) {
    this.host = host
    this.opts = {
      intervalMs: opts.intervalMs ?? CLUSTER_DEFAULTS.memberIntervalMs,
      ttlMs: opts.ttlMs ?? CLUSTER_DEFAULTS.memberTtlMs,
      maxPeers: Math.min(opts.maxPeers ?? C.MAX_MEMBERS, C.MAX_MEMBERS),
      fanout: opts.fanout ?? C.MEMBER_FANOUT,
      timeoutMs: opts.timeoutMs ?? 5_000,
      warnIntervalMs: opts.warnIntervalMs ?? WARN_INTERVAL_MS,
    }
    this.log = (opts.logger ?? silentLogger).child({ component: 'p2p-members' })
    this.warn = new RateLimitedLog(this.log, this.opts.warnIntervalMs)
    const reg = opts.registry ?? createRegistry()
    this.dialFailures = counter(reg, 'snapswarm_cluster_member_dial_failures_total', 'Dials to a listed cluster member that failed (every address tried)')
    const help = 'Cluster members this node knows of (itself excluded), by whether it is connected to them; read when scraped'
    const members = (reg.getSingleMetric('snapswarm_cluster_members') as Gauge | undefined) ?? new Gauge({ name: 'snapswarm_cluster_members', help, labelNames: ['connected'], registers: [reg] })
    Object.assign(members, { collect: () => this.collectMembers(members) })
  }

  private collectMembers(g: Gauge): void {
    const all = this.members()
    const on = all.filter((m) => m.connected).length
    g.set({ connected: 'true' }, on)
    g.set({ connected: 'false' }, all.length - on)
  }

  async start(): Promise<void> {
    await this.host.handle(C.PROTOCOL_MEMBERS, (raw, peer) => void this.receive(raw, peer))
    this.unsubscribe = this.host.onPeerEvent((ev) => {
      if (ev.type === 'connect') void this.pushTo(ev.peer)
      this.emit()
    })
    this.interval = setInterval(() => this.tick(), this.opts.intervalMs).unref()
    this.started = true
  }

  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.stopper.abort()
    clearInterval(this.interval)
    clearTimeout(this.graceTimer)
    this.unsubscribe?.()
    await this.host.unhandle(C.PROTOCOL_MEMBERS)
    this.stallTimer.stop()
  }

  /** Every member this node knows of (connected or learned from a list), itself excluded. */
  members(): MemberInfo[] {
    const out: MemberInfo[] = []
    const connected = new Set(this.host.connectedPeers())
    for (const [peer, k] of this.known) out.push({ peer, addrs: [...k.addrs], connected: connected.has(peer) })
    for (const peer of connected) if (!this.known.has(peer)) out.push({ peer, addrs: [], connected: true })
    return out
  }

  /** `listener` runs whenever a member is learned, forgotten, connects or disconnects; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** The list this node pushes: itself first, then connected members whose own addresses it knows. */
  list(): { peerId: string; addrs: string[] }[] {
    const out = [{ peerId: this.host.peerId, addrs: routableFirst(this.host.addrs()).slice(0, C.MAX_MEMBER_ADDRS) }]
    for (const peer of shuffled(this.host.connectedPeers())) {
      if (out.length >= C.MAX_MEMBERS) break
      const k = this.known.get(peer)
      if (k && k.addrs.length > 0) out.push({ peerId: peer, addrs: k.addrs })
    }
    return out
  }

  private tick(): void {
    this.expire()
    const peers = shuffled(this.host.connectedPeers()).slice(0, this.opts.fanout)
    for (const p of peers) void this.pushTo(p)
    this.dialMissing()
  }

  private async pushTo(peer: string): Promise<void> {
    if (this.stopper.signal.aborted) return
    const signal = AbortSignal.any([this.stopper.signal, AbortSignal.timeout(this.opts.timeoutMs)])
    try {
      await pushMessage(this.host, peer, C.PROTOCOL_MEMBERS, MemberList.encode({ members: this.list() }), { signal, stallMs: this.opts.timeoutMs, stallTimer: this.stallTimer })
    } catch (err) {
      // Not fatal: the next periodic push retries; a peer that went away is no member to tell.
      this.log.debug({ peer, err: (err as Error).message }, 'member list push failed')
    }
  }

  private async receive(raw: RawStream, sender: string): Promise<void> {
    const signal = AbortSignal.any([this.stopper.signal, AbortSignal.timeout(this.opts.timeoutMs)])
    try {
      const msg = await receivePushed(raw, decodeMemberList, C.MAX_MEMBERS_BYTES, 'MemberList', { signal, stallMs: this.opts.timeoutMs, stallTimer: this.stallTimer })
      this.learn(sender, msg.members)
    } catch (err) {
      this.warn.warn(`bad:${sender}`, { peer: sender, err: (err as Error).message }, 'bad member list from a peer')
    }
  }

  /** Take in a received list; the sender's own entry is authoritative for its addresses. */
  learn(sender: string, members: readonly { peerId: string; addrs: string[] }[]): void {
    const now = performance.now()
    let changed = false
    for (const m of members.slice(0, C.MAX_MEMBERS)) {
      const peer = validPeerId(m.peerId)
      if (!peer || peer === this.host.peerId) continue
      const addrs = validAddrs(m.addrs, peer)
      const k = this.known.get(peer)
      if (!k) {
        if (addrs.length === 0) continue
        this.known.set(peer, { addrs, seenAt: now, failures: 0, nextDialAt: now + this.graceFor(peer), dialing: false })
        changed = true
        continue
      }
      k.seenAt = now
      if (addrs.length > 0 && (peer === sender || !this.host.isConnected(peer))) k.addrs = addrs
    }
    if (changed) this.emit()
    this.dialMissing()
  }

  /** 0 when this node dials `peer` first (smaller id), else the grace before it dials in turn (jittered). */
  private graceFor(peer: string): number {
    return this.host.peerId < peer ? 0 : Math.round(C.MEMBER_DIAL_GRACE_MS * (0.75 + Math.random() * 0.5))
  }

  /** One timer for the earliest member whose grace ends within a push interval (later ones: the periodic tick). */
  private armGraceTimer(now: number): void {
    if (this.graceTimer || this.stopper.signal.aborted) return
    let next = Number.POSITIVE_INFINITY
    for (const k of this.known.values()) if (!k.dialing && k.failures === 0 && k.nextDialAt > now) next = Math.min(next, k.nextDialAt)
    if (next - now > this.opts.intervalMs) return
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined
      this.dialMissing()
    }, next - now + 1).unref()
  }

  /** Dial known members this node is not connected to, a few at a time, each after its backoff. */
  private dialMissing(): void {
    if (this.stopper.signal.aborted) return
    const now = performance.now()
    let room = this.opts.maxPeers - this.host.connectedPeers().length
    this.armGraceTimer(now)
    for (const [peer, k] of this.known) {
      if (this.dialsInFlight >= C.MAX_MEMBER_DIALS || room <= 0) return
      if (k.dialing || k.nextDialAt > now || this.host.isConnected(peer)) continue
      room--
      void this.dialMember(peer, k)
    }
  }

  private async dialMember(peer: string, k: Known): Promise<void> {
    k.dialing = true
    this.dialsInFlight++
    const errors: string[] = []
    try {
      for (const addr of k.addrs) {
        const signal = AbortSignal.any([this.stopper.signal, AbortSignal.timeout(this.opts.timeoutMs)])
        try {
          await this.host.dial(addr, signal)
          k.failures = 0
          this.log.debug({ peer, addr }, 'member connected')
          return
        } catch (err) {
          errors.push((err as Error).message)
        }
      }
      if (this.stopper.signal.aborted) return
      k.failures++
      this.dialFailures.inc()
      k.nextDialAt = performance.now() + backoffMs(k.failures)
      this.warn.warn(`dial:${peer}`, { peer, addrs: k.addrs, attempt: k.failures, err: errors.join('; ') }, 'cannot dial cluster member')
    } finally {
      k.dialing = false
      this.dialsInFlight--
      if (!this.stopper.signal.aborted) setImmediate(() => this.dialMissing())
    }
  }

  /** Forget members that are not connected and that no list named for `ttlMs`. */
  private expire(): void {
    const now = performance.now()
    let changed = false
    for (const [peer, k] of this.known) {
      if (this.host.isConnected(peer)) k.seenAt = now
      else if (now - k.seenAt > this.opts.ttlMs && !k.dialing) changed = this.known.delete(peer) || changed
    }
    if (changed) this.emit()
  }

  private emit(): void {
    for (const fn of this.listeners) {
      try {
        fn()
      } catch {
        // A subscriber's bug must not stop membership or the other subscribers.
      }
    }
  }
}

export function decodeMemberList(buf: Uint8Array): MemberList {
  return MemberList.decode(buf, { limits: { members: C.MAX_MEMBERS, members$: { addrs: C.MAX_MEMBER_ADDRS } } })
}

function validPeerId(s: string): string | undefined {
  if (s.length === 0 || s.length > C.MAX_PEER_ID_CHARS) return undefined
  try {
    return peerIdFromString(s).toString()
  } catch {
    return undefined
  }
}

/** Addresses that parse, are short, and name `peer` (a /p2p/<id> suffix is added when missing, refused when another). */
function validAddrs(addrs: readonly string[], peer: string): string[] {
  const out: string[] = []
  for (const a of addrs.slice(0, C.MAX_MEMBER_ADDRS)) {
    if (a.length === 0 || a.length > C.MAX_MEMBER_ADDR_CHARS) continue
    try {
      const ma = multiaddr(a)
      const named = ma.getComponents().filter((c) => c.name === 'p2p')
      if (named.length > 1 || (named.length === 1 && named[0].value !== peer)) continue
      out.push(named.length === 1 ? ma.toString() : `${ma.toString()}/p2p/${peer}`)
    } catch {
      // Not a multiaddr: skipped.
    }
  }
  return out
}

/**
 * A node listening on every interface has loopback addresses too; on another host those lead to that
 * host's own node (or nothing). Listed only when the node has no other address (a one-machine cluster).
 */
export function routableFirst(addrs: readonly string[]): string[] {
  const loopback = (a: string) => a.startsWith('/ip4/127.') || a.startsWith('/ip6/::1/')
  const routable = addrs.filter((a) => !loopback(a))
  return routable.length > 0 ? routable : [...addrs]
}

/** Retry delay after `failures` failed dials: doubling from the bootstrap minimum, capped, ±25 % jitter. */
function backoffMs(failures: number): number {
  const base = Math.min(C.BOOTSTRAP_BACKOFF_MAX_MS, C.BOOTSTRAP_BACKOFF_MIN_MS * C.BOOTSTRAP_BACKOFF_FACTOR ** (failures - 1))
  return Math.round(base * (0.75 + Math.random() * 0.5))
}

function shuffled<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[xs[i], xs[j]] = [xs[j], xs[i]]
  }
  return xs
}
