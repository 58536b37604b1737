/**
 * Streams opened ahead of the request that will use them. Opening a stream costs a protocol
 * negotiation round trip before the first request byte can leave; a caller that knows a request to a
 * peer is coming (a reader asking a peer for a build's header will ask the same peer for frames next)
 * starts the stream early with `warm`, and the request takes it with `take`: the negotiation overlaps
 * the work before the request instead of adding to it.
 *
 * Bounded: at most one warm stream per (peer, protocol), at most `maxStreams` in all, each kept
 * `maxAgeMs` at most (below the remote's stall limit, which cuts a stream that sends nothing), then
 * closed without a request; the remote counts such a stream as unused, not as a failed request.
 * A stream that fails to open is simply not there: the request opens its own as before.
 */
import { isOpen, type RawStream } from './stream.ts'

export type StreamOpener = (peer: string, protocol: string, signal: AbortSignal) => Promise<RawStream>

interface Entry {
  readonly opening: Promise<RawStream | undefined>
  readonly abort: AbortController
  readonly timer: NodeJS.Timeout
  stream?: RawStream
  /** Closed unused: a stream that opens now is not wanted. */
  expired?: boolean
}

export interface WarmStreamsOptions {
  /** A warm stream unused this long is closed (default 1000 ms, half the default stall limit). */
  readonly maxAgeMs?: number
  /** Warm streams kept at once, across peers and protocols (default 64). */
  readonly maxStreams?: number
}

export class WarmStreams {
  private readonly open: StreamOpener
  private readonly maxAgeMs: number
  private readonly maxStreams: number
  private readonly entries = new Map<string, Entry>()
  /** Streams taken from the pool, and streams closed unused (for metrics and tests). */
  readonly stats = { taken: 0, expired: 0 }

  constructor(open: StreamOpener, opts: WarmStreamsOptions = {}) {
    this.open = open
    this.maxAgeMs = opts.maxAgeMs ?? 1000
    this.maxStreams = opts.maxStreams ?? 64
  }

  /** Start opening a `protocol` stream to `peer`, unless one is warm or opening already (or the pool is full). */
  warm(peer: string, protocol: string): void {
    const key = `${peer} ${protocol}`
    if (this.entries.has(key) || this.entries.size >= this.maxStreams) return
    const abort = new AbortController()
    const timer = setTimeout(() => this.expire(key, entry), this.maxAgeMs)
    timer.unref()
    const opening = this.open(peer, protocol, abort.signal).then(
      (stream) => {
        if (entry.expired) {
          stream.abort(new Error('warm stream no longer wanted'))
          return undefined
        }
        entry.stream = stream
        return stream
      },
      () => {
        this.drop(key, entry)
        return undefined
      },
    )
    const entry: Entry = { opening, abort, timer }
    this.entries.set(key, entry)
  }

  /**
   * The warm (or still opening) `protocol` stream to `peer`, taken out of the pool, or undefined.
   * Resolves undefined when its open fails: the caller then opens a stream of its own.
   */
  take(peer: string, protocol: string): Promise<RawStream | undefined> | undefined {
    const key = `${peer} ${protocol}`
    const entry = this.entries.get(key)
    if (!entry) return undefined
    this.drop(key, entry)
    this.stats.taken++
    // Reset by the remote while it waited (e.g. the peer restarted): not usable, a new one is opened.
    return entry.opening.then((s) => (s && isOpen(s) ? s : undefined))
  }

  /** Close every warm stream (node stop). */
  close(): void {
    for (const [key, entry] of [...this.entries]) this.expire(key, entry)
  }

  private expire(key: string, entry: Entry): void {
    if (this.entries.get(key) !== entry) return
    this.drop(key, entry)
    entry.expired = true
    this.stats.expired++
    if (entry.stream) void entry.stream.close().catch(() => entry.stream?.abort(new Error('warm stream unused')))
    else entry.abort.abort(new Error('warm stream unused'))
  }

  private drop(key: string, entry: Entry): void {
    clearTimeout(entry.timer)
    if (this.entries.get(key) === entry) this.entries.delete(key)
  }
}
