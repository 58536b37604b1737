/**
 * The have protocol (`/snapswarm/have/1.0.0`): each node pushes to its connected peers which frames
 * of the build files it reads it holds and is fetching (src/swarm/have-message.ts), so readers of
 * the same build fetch frames from each other (src/swarm/select.ts). Push only, one message per
 * stream, no answer: a full message to a peer that just connected and for a file just opened, then
 * deltas shortly after each change (coalesced for `debounceMs`), and the full state to every peer
 * every `refreshMs`, so a lost message is made good.
 *
 * Bounded both ways: a received message is length-checked (MAX_HAVE_BYTES) before it is read and
 * fully validated before it is applied (a bad one is dropped and logged, rate-limited); pushes to one
 * peer go one at a time, and a peer that falls behind by more than MAX_QUEUED messages gets the full
 * state once instead of the backlog. Availability is a hint: a lost or reordered message costs a
 * "not here" answer or a wait that times out, never a wrong byte (every frame is verified).
 */
import { type Logger, silentLogger } from '../../obs/log.ts'
import { type Counter, counter, createRegistry, type Registry } from '../../obs/metrics.ts'
import { decodeHave, encodeHave, type HaveMessage, MAX_HAVE_BYTES } from '../../swarm/have-message.ts'
import { CoarseTimer } from '../../util/coarse-timer.ts'
import * as C from '../constants.ts'
import type { PeerHost } from '../host.ts'
import { type RawStream, WireStream } from '../wire/stream.ts'

export const PROTOCOL_HAVE = '/snapswarm/have/1.0.0'
/** Messages waiting for one peer before they are replaced by the full state. */
export const MAX_QUEUED = 64
/** Default full-state refresh interval (HaveOptions.refreshMs). */
export const REFRESH_MS = 10_000

/** What the protocol moves: SwarmAvailability (src/swarm/availability.ts) is one. */
export interface HaveBook {
  apply(peer: string, m: HaveMessage): void
  forgetPeer(peer: string): void
  takeOutgoing(): HaveMessage[]
  fullState(): HaveMessage[]
  onChange(listener: () => void): () => void
  /** Whether `peer` reads `file` too (it sent a message about it). */
  peerIndexes(peer: string, file: HaveMessage): boolean
}

export interface HaveOptions {
  /** Changes are pushed this long after the first one (a burst goes out as one delta). */
  debounceMs?: number
  /** Deadline of one push or receipt. */
  timeoutMs?: number
  /**
   * The full state is pushed to every connected peer this often: a message lost (a peer that was not
   * listening yet, a failed push) is made good within this bound. Default REFRESH_MS.
   */
  refreshMs?: number
  registry?: Registry
  logger?: Logger
}

export class HaveService {
  private readonly host: PeerHost
  private readonly book: HaveBook
  private readonly debounceMs: number
  private readonly timeoutMs: number
  private readonly log: Logger
  /** Peer → when a bad message of theirs was last logged (one line per peer per minute; bounded). */
  private readonly warnedAt = new Map<string, number>()
  private readonly stallTimer = new CoarseTimer(C.WATCHDOG_TICK_MS)
  private readonly queues = new Map<string, HaveMessage[]>()
  private readonly sending = new Set<string>()
  private readonly messages: Counter<'direction' | 'result'>
  private readonly unsubscribe: (() => void)[] = []
  private debounce: NodeJS.Timeout | undefined
  private refresh: NodeJS.Timeout | undefined
  private readonly refreshMs: number
  private started = false

  constructor(host: PeerHost, book: HaveBook, opts: HaveOptions = {}) {
    this.host = host
    this.book = book
    this.debounceMs = opts.debounceMs ?? 5
    this.timeoutMs = opts.timeoutMs ?? 5_000
    this.refreshMs = opts.refreshMs ?? REFRESH_MS
    this.log = (opts.logger ?? silentLogger).child({ component: 'p2p-have' })
    this.messages = counter(opts.registry ?? createRegistry(), 'snapswarm_have_messages_total', 'Frame availability messages, by direction and result', [
      'direction',
      'result',
    ]) as Counter<'direction' | 'result'>
  }

  async start(): Promise<void> {
    await this.host.handle(PROTOCOL_HAVE, (raw, peer) => void this.receive(raw, peer))
    this.unsubscribe.push(
      this.host.onPeerEvent((ev) => {
        if (ev.type === 'connect') this.enqueue(ev.peer, this.book.fullState(), true)
        else {
          this.book.forgetPeer(ev.peer)
          this.queues.delete(ev.peer)
        }
      }),
      this.book.onChange(() => this.changed()),
    )
    this.started = true
    this.refreshAll()
    this.refresh = setInterval(() => this.refreshAll(), this.refreshMs)
    this.refresh.unref()
  }

  private refreshAll(): void {
    const full = this.book.fullState()
    for (const peer of this.host.connectedPeers()) this.enqueue(peer, full, true)
  }

  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    clearTimeout(this.debounce)
    clearInterval(this.refresh)
    for (const u of this.unsubscribe.splice(0)) u()
    this.queues.clear()
    await this.host.unhandle(PROTOCOL_HAVE)
    this.stallTimer.stop()
  }

  private changed(): void {
    if (!this.started || this.debounce) return
    this.debounce = setTimeout(() => {
      this.debounce = undefined
      const out = this.book.takeOutgoing()
      if (out.length === 0) return
      // A full message (a file opened) goes to every peer, so readers find each other; a delta only to
      // the peers that read the file too: in a large cluster most peers never read this build.
      for (const peer of this.host.connectedPeers()) this.enqueue(peer, out.filter((m) => m.shape === 'full' || this.book.peerIndexes(peer, m)), false)
    }, this.debounceMs)
    this.debounce.unref()
  }

  private enqueue(peer: string, msgs: readonly HaveMessage[], full: boolean): void {
    if (!this.started || msgs.length === 0) return
    let q = this.queues.get(peer) ?? []
    q = full ? [...msgs] : [...q, ...msgs]
    // Fallen behind: the full state says everything the backlog would.
    if (q.length > MAX_QUEUED) q = this.book.fullState()
    this.queues.set(peer, q)
    if (!this.sending.has(peer)) void this.drain(peer)
  }

  private async drain(peer: string): Promise<void> {
    this.sending.add(peer)
    try {
      for (let q = this.queues.get(peer); q && q.length > 0; q = this.queues.get(peer)) {
        const m = q.shift()!
        await this.push(peer, encodeHave(m))
      }
    } finally {
      this.sending.delete(peer)
      this.queues.delete(peer)
    }
  }

  private async push(peer: string, message: Uint8Array): Promise<void> {
    const signal = AbortSignal.timeout(this.timeoutMs)
    try {
      const raw = await this.host.openStream(peer, PROTOCOL_HAVE, signal)
      const wire = new WireStream(raw, { budget: 0, signal, stallMs: this.timeoutMs, stallTimer: this.stallTimer })
      try {
        await wire.writeMessage(message)
        await wire.closeWrite()
        wire.finish()
        this.messages.inc({ direction: 'sent', result: 'ok' })
      } catch (err) {
        throw wire.fail(err)
      }
    } catch (err) {
      this.messages.inc({ direction: 'sent', result: 'error' })
      this.log.debug({ peer, err: (err as Error).message }, 'have push failed')
    }
  }

  private async receive(raw: RawStream, peer: string): Promise<void> {
    const signal = AbortSignal.timeout(this.timeoutMs)
    const wire = new WireStream(raw, { budget: C.MAX_VARINT_BYTES + MAX_HAVE_BYTES, signal, stallMs: this.timeoutMs, stallTimer: this.stallTimer })
    try {
      const m = await wire.readMessage(decodeHave, MAX_HAVE_BYTES, 'Have')
      await wire.closeWrite()
      wire.finish()
      const known = this.book.peerIndexes(peer, m)
      this.book.apply(peer, m)
      this.messages.inc({ direction: 'received', result: 'ok' })
      // A peer that just started reading a file we read: our state of it now (deltas before went to others only).
      if (!known) this.enqueue(peer, this.book.fullState().filter((f) => f.buildId === m.buildId && f.kind === m.kind && f.tableId === m.tableId), false)
    } catch (err) {
      wire.fail(err)
      this.messages.inc({ direction: 'received', result: 'bad' })
      this.warnBad(peer, err as { code?: string; message?: string })
    }
  }

  private warnBad(peer: string, e: { code?: string; message?: string }): void {
    const now = performance.now()
    const last = this.warnedAt.get(peer)
    if (last !== undefined && now - last < 60_000) return
    this.warnedAt.delete(peer)
    this.warnedAt.set(peer, now)
    if (this.warnedAt.size > 1024) this.warnedAt.delete(this.warnedAt.keys().next().value!)
    this.log.warn({ peer, code: e.code, err: e.message }, 'bad have message from peer (dropped)')
  }
}
