/**
 * The one module that touches the libp2p stream API (it changed four times in four
 * years). Everything else in src/p2p reads and writes through `WireStream`:
 * - reads are pull-style (`readExact`, `readMessage`) over a queue filled by 'message' events, with a
 *   byte budget for the stream's whole life: the remote can never make us buffer more than the
 *   request allows, and an over-budget stream is aborted before the bytes are kept;
 * - lengths from the network are checked against a limit before anything is allocated;
 * - writes use backpressure: `send()`, and `onDrain()` when it returns false;
 * - a stalled remote (no bytes, no drain for `stallMs`) fails the stream via the shared stall timer;
 * - a truncated stream is an error, never a short result: libp2p ends a reset reader's iteration with
 *   no error, so every read checks it got the bytes it was promised.
 */
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { LimitError } from '../../errors.ts'
import { MAX_VARINT_BYTES } from '../constants.ts'
import { PeerProtocolError, PeerStallError, PeerStreamError } from '../errors.ts'
import type { CoarseTimeout, CoarseTimer, Watched } from '../../util/coarse-timer.ts'

/** A libp2p stream, opaque outside this module: pass it to `new WireStream`, never call it directly. */
export type RawStream = Stream

/** Still open both ways as far as we know (a stream kept for later may have been reset meanwhile). */
export function isOpen(raw: RawStream): boolean {
  return raw.status === 'open' && raw.writeStatus === 'writable' && raw.readStatus !== 'closed' && raw.remoteWriteStatus !== 'closed'
}

export interface WireOptions {
  /** Bytes this side accepts from the remote over the stream's whole life; one more aborts it. */
  budget: number
  /** Aborting it aborts the stream (reset sent to the remote); reads and writes reject with its reason. */
  signal: AbortSignal
  stallMs: number
  /** The timer shared by the streams of one client or server that fails a stalled stream. */
  stallTimer: CoarseTimer
}

export class WireStream implements Watched {
  lastActivity = performance.now()
  readonly stallMs: number
  private readonly raw: Stream
  private readonly buf = new Uint8ArrayList()
  private readonly budget: number
  private readonly signal: AbortSignal
  private readonly stallWatch: CoarseTimeout
  private received = 0
  private ended = false
  private failure: unknown
  private disposed = false
  private wake: (() => void) | undefined

  constructor(raw: RawStream, opts: WireOptions) {
    this.raw = raw
    this.budget = opts.budget
    this.signal = opts.signal
    this.stallMs = opts.stallMs
    raw.addEventListener('message', this.onMessage)
    raw.addEventListener('close', this.onClose)
    raw.addEventListener('remoteCloseWrite', this.onRemoteCloseWrite)
    this.signal.addEventListener('abort', this.onAbort)
    this.stallWatch = opts.stallTimer.watch(this)
    if (this.signal.aborted) this.onAbort()
  }

  /** Bytes received so far (for metrics and error messages). */
  get bytesReceived(): number {
    return this.received
  }

  /** Exactly `n` bytes; `n` must already be checked against a limit by the caller. */
  async readExact(n: number): Promise<Uint8Array> {
    while (this.buf.byteLength < n) await this.more(n)
    const out = this.buf.subarray(0, n)
    this.buf.consume(n)
    return out
  }

  /** A varint length prefix, refused as soon as it exceeds `max` (nothing allocated for it). */
  async readLength(max: number, what: string): Promise<number> {
    let value = 0
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      while (this.buf.byteLength < 1) await this.more(1)
      const byte = this.buf.get(0)
      this.buf.consume(1)
      value += (byte & 0x7f) * 2 ** (7 * i)
      if (value > max) throw this.fail(new LimitError(`${what}: length ${value}+ exceeds the limit of ${max} bytes`))
      if ((byte & 0x80) === 0) return value
    }
    throw this.fail(new PeerProtocolError(`${what}: length prefix longer than ${MAX_VARINT_BYTES} bytes`))
  }

  /** One varint-length-prefixed protobuf message of at most `max` bytes. */
  async readMessage<T>(decode: (buf: Uint8Array) => T, max: number, what: string): Promise<T> {
    const bytes = await this.readExact(await this.readLength(max, what))
    try {
      return decode(bytes)
    } catch (err) {
      throw this.fail(new PeerProtocolError(`${what}: unparsable message of ${bytes.byteLength} bytes`, { cause: err }))
    }
  }

  /** Send with backpressure: resolves when the transport can take more (drain-based). */
  async write(data: Uint8Array | Uint8ArrayList): Promise<void> {
    this.throwIfFailed()
    try {
      if (!this.raw.send(data)) await this.raw.onDrain({ signal: this.signal })
    } catch (err) {
      throw this.failure ?? this.fail(new PeerStreamError('stream closed while writing', { cause: err }))
    }
    this.lastActivity = performance.now()
  }

  /**
   * A protobuf message with its varint length prefix, in one send; `then` (raw bytes that follow the
   * message) rides in the same send, so a response header and its first bytes share one muxer frame
   * and one Noise message instead of costing a small one of their own.
   */
  writeMessage(encoded: Uint8Array, then?: Uint8Array): Promise<void> {
    const out = new Uint8ArrayList(encodeVarint(encoded.byteLength), encoded)
    if (then) out.append(then)
    return this.write(out)
  }

  /** Half-close: everything written is flushed, the remote sees the end; reading may continue. */
  async closeWrite(): Promise<void> {
    this.throwIfFailed()
    try {
      await this.raw.close({ signal: this.signal })
    } catch (err) {
      throw this.failure ?? this.fail(new PeerStreamError('stream failed while closing', { cause: err }))
    }
  }

  /** Success path: stop watching and release listeners; the stream closes when both ends have. */
  finish(): void {
    this.dispose()
  }

  /** Failure path: reset the stream, release everything; returns `err` so callers can `throw`. */
  fail(err: unknown): unknown {
    if (this.failure === undefined) {
      this.failure = err
      this.raw.abort(err instanceof Error ? err : new Error(String(err)))
      this.dispose()
      this.notify()
    }
    return this.failure
  }

  stalled(): void {
    this.fail(new PeerStallError(this.stallMs))
  }

  private async more(want: number): Promise<void> {
    this.throwIfFailed()
    if (this.ended) {
      throw this.fail(new PeerProtocolError(`stream ended after ${this.received} bytes, ${want - this.buf.byteLength} short`))
    }
    await new Promise<void>((resolve) => {
      this.wake = resolve
    })
    this.throwIfFailed()
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure
  }

  private notify(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  private readonly onMessage = (evt: StreamMessageEvent): void => {
    this.received += evt.data.byteLength
    if (this.received > this.budget) {
      this.fail(new LimitError(`remote sent ${this.received} bytes, more than the ${this.budget} this exchange allows`))
      return
    }
    this.buf.append(evt.data)
    this.lastActivity = performance.now()
    this.notify()
  }

  private readonly onClose = (evt: StreamCloseEvent): void => {
    if (evt.error != null) this.fail(new PeerStreamError(`stream reset: ${evt.error.message}`, { cause: evt.error }))
    this.ended = true
    this.notify()
  }

  private readonly onRemoteCloseWrite = (): void => {
    this.ended = true
    this.notify()
  }

  private readonly onAbort = (): void => {
    this.fail(this.signal.reason)
  }

  private dispose(): void {
    if (this.disposed) return
    this.disposed = true
    this.stallWatch.cancel()
    this.signal.removeEventListener('abort', this.onAbort)
    this.raw.removeEventListener('message', this.onMessage)
    this.raw.removeEventListener('close', this.onClose)
    this.raw.removeEventListener('remoteCloseWrite', this.onRemoteCloseWrite)
  }
}

function encodeVarint(n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return Uint8Array.from(out)
}
