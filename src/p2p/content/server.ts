/**
 * Serving side of the content protocols. One request per stream: read the (bounded) request, ask the
 * provider, answer with a status, then for frames and blobs the raw bytes with backpressure. Above
 * `maxServing` concurrent requests the answer is BUSY at once (never queue without bound);
 * libp2p's per-connection stream limits sit above ours so overload is an answer, not a reset.
 */
import { InvalidArgumentError } from '../../errors.ts'
import { PEER_DEFAULTS } from '../../config/schema.ts'
import { type Logger, silentLogger } from '../../obs/log.ts'
import { type Counter, counter, type Gauge, gauge, type Registry, createRegistry } from '../../obs/metrics.ts'
import { raceAbort } from '../../util/abort.ts'
import { CoarseTimer } from '../../util/coarse-timer.ts'
import * as C from '../constants.ts'
import { PeerProtocolError } from '../errors.ts'
import type { PeerHost } from '../host.ts'
import * as M from '../wire/messages.ts'
import { type RawStream, WireStream } from '../wire/stream.ts'
import { type FrameRange, type PeerContentProvider, type PeerStatus, PROTOCOL_FRAMES_RELAY } from './types.ts'

export interface ContentServerOptions {
  /** Concurrent requests served (all peers, all protocols) before answering BUSY. */
  maxServing?: number
  /** Reset a request whose client stops reading for this long. */
  stallMs?: number
  /** Whole-request deadline on the serving side. */
  timeoutMs?: number
  registry?: Registry
  logger?: Logger
}

/**
 * `admit()` is called once the request is read (synchronously with its parsing): it takes a serving
 * slot, or returns false = answer BUSY. A stream still waiting for its request holds no slot, so one a
 * client opened ahead of its request never crowds out requests; while waiting it costs a stream object
 * and at most a request's bytes, and the stall watchdog ends it.
 */
type Handler = (wire: WireStream, signal: AbortSignal, admit: () => boolean) => Promise<PeerStatus>

export class ContentServer {
  private readonly host: PeerHost
  private readonly provider: PeerContentProvider
  private readonly maxServing: number
  private readonly stallMs: number
  private readonly timeoutMs: number
  private readonly log: Logger
  /** One stall timer for all of this side's streams. */
  private readonly stallTimer = new CoarseTimer(C.WATCHDOG_TICK_MS)
  private readonly stopper = new AbortController()
  private readonly served: Counter
  private readonly bytes: Counter
  private readonly serving: Gauge
  private active = 0

  constructor(host: PeerHost, provider: PeerContentProvider, opts: ContentServerOptions = {}) {
    this.host = host
    this.provider = provider
    this.maxServing = opts.maxServing ?? PEER_DEFAULTS.maxConcurrentServe
    this.stallMs = opts.stallMs ?? PEER_DEFAULTS.stallTimeoutMs
    this.timeoutMs = opts.timeoutMs ?? PEER_DEFAULTS.requestTimeoutMs
    this.log = (opts.logger ?? silentLogger).child({ component: 'p2p-server' })
    const reg = opts.registry ?? createRegistry()
    this.served = counter(reg, 'snapswarm_peer_served_total', 'Peer requests answered, by protocol and status', ['protocol', 'status'])
    this.bytes = counter(reg, 'snapswarm_peer_served_bytes_total', 'Frame and blob bytes sent to peers', ['protocol'])
    this.serving = gauge(reg, 'snapswarm_peer_serving', 'Peer requests being served now')
  }

  async start(): Promise<void> {
    await this.register(C.PROTOCOL_HEADER, 'header', (w, s, b) => this.serveHeader(w, s, b))
    await this.register(C.PROTOCOL_FRAMES, 'frames', (w, s, b) => this.serveFrames(w, s, b))
    await this.register(PROTOCOL_FRAMES_RELAY, 'frames-relay', (w, s, b) => this.serveFrames(w, s, b, true))
    await this.register(C.PROTOCOL_BLOB, 'blob', (w, s, b) => this.serveBlob(w, s, b))
  }

  /** Stop accepting, reset what is in flight (clients fall back to their next source). */
  async stop(): Promise<void> {
    for (const p of [C.PROTOCOL_HEADER, C.PROTOCOL_FRAMES, PROTOCOL_FRAMES_RELAY, C.PROTOCOL_BLOB]) await this.host.unhandle(p)
    this.stopper.abort(new PeerProtocolError('server stopping'))
    this.stallTimer.stop()
  }

  private register(protocol: string, name: string, handler: Handler): Promise<void> {
    return this.host.handle(protocol, (raw, peer) => void this.serve(raw, peer, name, handler))
  }

  private async serve(raw: RawStream, peer: string, name: string, handler: Handler): Promise<void> {
    const signal = AbortSignal.any([this.stopper.signal, AbortSignal.timeout(this.timeoutMs)])
    const budget = C.MAX_REQUEST_BYTES + C.MAX_VARINT_BYTES
    const wire = new WireStream(raw, { budget, signal, stallMs: this.stallMs, stallTimer: this.stallTimer })
    let held = false
    const admit = (): boolean => {
      if (!held && this.active < this.maxServing) {
        held = true
        this.serving.set(++this.active)
      }
      return held
    }
    try {
      const status = await handler(wire, signal, admit)
      await wire.closeWrite()
      wire.finish()
      this.served.inc({ protocol: name, status })
    } catch (err) {
      wire.fail(err)
      // A stream the client opened ahead of a request and then closed without one (its warm stream
      // went unused): no request, so no failed request either.
      const unused = wire.bytesReceived === 0 && err instanceof PeerProtocolError && !signal.aborted
      this.served.inc({ protocol: name, status: unused ? 'unused' : 'error' })
      if (!unused) this.log.debug({ peer, protocol: name, err: (err as Error).message }, 'peer request failed')
    } finally {
      if (held) this.serving.set(--this.active)
    }
  }

  /** Provider failures are "not here" for the peer (it tries elsewhere) and a warning for us. */
  private async ask<T>(what: string, fn: () => Promise<T>): Promise<T | { status: 'NOT_AVAILABLE' }> {
    try {
      return await fn()
    } catch (err) {
      this.log.warn({ what, err: (err as Error).message }, 'content provider failed')
      return { status: 'NOT_AVAILABLE' }
    }
  }

  private async serveHeader(wire: WireStream, signal: AbortSignal, admit: () => boolean): Promise<PeerStatus> {
    const req = await wire.readMessage(M.GetHeader.decode, C.MAX_REQUEST_BYTES, 'GetHeader')
    const buildId = M.buildIdFromWire(req.buildId)
    const kind = M.kindFromWire(req.kind)
    const firstReadAt = req.firstReadAt !== undefined && Number.isSafeInteger(req.firstReadAt) && req.firstReadAt >= 0 ? req.firstReadAt : undefined
    const opts = firstReadAt === undefined ? undefined : { firstReadAt }
    let ans = !admit() ? { status: 'BUSY' as const } : await this.ask('header', () => this.provider.getHeader(buildId, kind, signal, opts))
    if (ans.status === 'OK' && ans.header.byteLength > C.MAX_HEADER_BYTES) {
      this.log.error({ buildId, kind, size: ans.header.byteLength }, 'header larger than peers accept; not served')
      ans = { status: 'NOT_AVAILABLE' }
    }
    const ok = ans.status === 'OK' ? ans : undefined
    // A frame that is not what the provider says it is would be refused by the client: not sent.
    const frame = ok?.frame && ok.frame.bytes.byteLength === ok.frame.sizeC && ok.frame.sizeC <= C.MAX_FRAME_BYTES ? ok.frame : undefined
    const header = (ok?.header ?? new Uint8Array(0)) as Uint8Array<ArrayBuffer>
    const message = M.HeaderResponse.encode({ status: M.statusToWire(ans.status), header, pending: ok?.pending ?? false, frameStartC: frame?.startC ?? 0, frameSizeC: frame?.sizeC ?? 0 })
    await wire.writeMessage(message, frame?.bytes)
    if (frame) this.bytes.inc({ protocol: 'header' }, frame.sizeC)
    return ans.status
  }

  private async serveFrames(wire: WireStream, signal: AbortSignal, admit: () => boolean, relay = false): Promise<PeerStatus> {
    const req = await wire.readMessage(M.decodeGetFrames, C.MAX_REQUEST_BYTES, 'GetFrames')
    const buildId = M.buildIdFromWire(req.buildId)
    const kind = M.kindFromWire(req.kind)
    const codec = M.codecFromWire(req.codec)
    const ranges: FrameRange[] = req.frames.map((f) => ({ startC: f.startC, sizeC: f.sizeC }))
    const problem = M.batchProblem(ranges, C.MAX_BATCH_BYTES)
    if (problem) throw new PeerProtocolError(`GetFrames: ${problem}`)
    const ans = !admit() ? { status: 'BUSY' as const } : await this.ask('frames', () => this.provider.getFrames(buildId, kind, codec, ranges, signal, relay ? { relay } : undefined))
    if (ans.status !== 'OK') {
      await wire.writeMessage(M.FramesResponse.encode({ status: M.statusToWire(ans.status), lengths: [] }))
      return ans.status
    }
    // The next frame is read while this one is sent: the provider's disk read overlaps the wire.
    let next: Promise<Uint8Array> | undefined
    try {
      const header = M.FramesResponse.encode({ status: M.statusToWire('OK'), lengths: ranges.map((r) => r.sizeC) })
      next = ans.batch.frame(0, signal)
      for (const [i, r] of ranges.entries()) {
        const bytes = await next
        if (i + 1 < ranges.length) {
          next = ans.batch.frame(i + 1, signal)
          next.catch(() => {}) // observed by the await above on the next turn; unobserved if this one fails
        }
        if (bytes.byteLength !== r.sizeC) {
          throw new InvalidArgumentError(`provider returned ${bytes.byteLength} bytes for frame ${i} (startC ${r.startC}), expected ${r.sizeC}`)
        }
        // The header goes out with the first frame (one muxer frame, one Noise message, not two).
        await (i === 0 ? wire.writeMessage(header, bytes) : wire.write(bytes))
        this.bytes.inc({ protocol: 'frames' }, bytes.byteLength)
      }
    } finally {
      // No read of the batch still running when it is released, unless the request is over (deadline,
      // stop): then a hung read must not hold the serving slot; the provider's handle outlives it safely.
      if (next) await raceAbort(next, signal).catch(() => {})
      ans.batch.release?.()
    }
    return 'OK'
  }

  private async serveBlob(wire: WireStream, signal: AbortSignal, admit: () => boolean): Promise<PeerStatus> {
    const req = await wire.readMessage(M.GetBlob.decode, C.MAX_REQUEST_BYTES, 'GetBlob')
    const buildId = M.buildIdFromWire(req.buildId)
    const known = C.BLOB_NAMES.includes(req.name)
    let ans = !admit() ? { status: 'BUSY' as const } : !known ? { status: 'NOT_AVAILABLE' as const } : await this.ask('blob', () => this.provider.getBlob(buildId, req.name, signal))
    if (ans.status === 'OK' && ans.bytes.byteLength > C.MAX_BLOB_BYTES) {
      this.log.error({ buildId, name: req.name, size: ans.bytes.byteLength }, 'blob larger than peers accept; not served')
      ans = { status: 'NOT_AVAILABLE' }
    }
    const bytes = ans.status === 'OK' ? ans.bytes : undefined
    await wire.writeMessage(M.BlobResponse.encode({ status: M.statusToWire(ans.status), length: bytes?.byteLength ?? 0 }), bytes)
    if (bytes) this.bytes.inc({ protocol: 'blob' }, bytes.byteLength)
    return ans.status
  }
}
