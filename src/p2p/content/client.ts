/**
 * Fetching side of the content protocols. Every call has a deadline (the caller's signal, or a
 * default timeout) and stall detection (no bytes for `stallMs`): a slow or dead peer costs at most
 * that long before the caller moves to its next source. Statuses come back as data;
 * broken exchanges throw (PeerStallError, PeerStreamError, PeerProtocolError, LimitError) and a
 * caller's abort rejects with the signal's reason. Returned bytes are unverified.
 */
import { InvalidArgumentError } from '../../errors.ts'
import { PEER_DEFAULTS } from '../../config/schema.ts'
import type { BuildId, CodecName, FileKind } from '../../format/types.ts'
import { type Counter, counter, createRegistry, type Histogram, histogram, type Registry } from '../../obs/metrics.ts'
import { raceAbort, withDeadline } from '../../util/abort.ts'
import { CoarseTimer } from '../../util/coarse-timer.ts'
import * as C from '../constants.ts'
import { PeerProtocolError } from '../errors.ts'
import type { PeerHost } from '../host.ts'
import * as M from '../wire/messages.ts'
import { type RawStream, WireStream } from '../wire/stream.ts'
import { WarmStreams } from '../wire/warm-streams.ts'
import { type BlobResult, type FrameRange, type FramesRequestOptions, type FramesResult, type FrameWithHeader, type HeaderRequestOptions, type HeaderResult, PROTOCOL_FRAMES_RELAY, type RequestOptions } from './types.ts'

/** Protocols whose requests come in runs: each request warms a stream for the next one (see `stream`). */
const REARMED = new Set([C.PROTOCOL_HEADER, C.PROTOCOL_FRAMES, PROTOCOL_FRAMES_RELAY])

export interface PeerClientOptions {
  stallMs?: number
  timeoutMs?: number
  /** Largest batch this client asks for (≤ MAX_BATCH_BYTES): bounds what one response can make us hold. */
  maxBatchBytes?: number
  registry?: Registry
}

export class PeerClient {
  private readonly host: PeerHost
  private readonly stallMs: number
  private readonly timeoutMs: number
  private readonly maxBatchBytes: number
  /** One stall timer for all of this side's streams. */
  private readonly stallTimer = new CoarseTimer(C.WATCHDOG_TICK_MS)
  private readonly requests: Counter
  private readonly seconds: Histogram
  /** Streams opened ahead of a request that is about to come (`warmFrames`). */
  private readonly warmStreams: WarmStreams

  constructor(host: PeerHost, opts: PeerClientOptions = {}) {
    this.host = host
    this.stallMs = opts.stallMs ?? PEER_DEFAULTS.stallTimeoutMs
    this.timeoutMs = opts.timeoutMs ?? PEER_DEFAULTS.requestTimeoutMs
    this.maxBatchBytes = Math.min(opts.maxBatchBytes ?? C.MAX_BATCH_BYTES, C.MAX_BATCH_BYTES)
    const reg = opts.registry ?? createRegistry()
    this.requests = counter(reg, 'snapswarm_peer_requests_total', 'Requests to peers, by protocol and outcome', ['protocol', 'outcome'])
    this.seconds = histogram(reg, 'snapswarm_peer_request_seconds', 'Peer request latency, by protocol', ['protocol'])
    // Kept for half the stall limit at most: the remote cuts a stream that sends nothing for that long.
    this.warmStreams = new WarmStreams((p, protocol, signal) => host.openStream(p, protocol, signal), { maxAgeMs: this.stallMs / 2 })
  }

  /**
   * A frames request to `peer` is about to come (a reader is asking it for a build's header): open
   * its stream now, so the protocol negotiation is done by the time the request leaves.
   */
  warmFrames(peer: string): void {
    this.warmStreams.warm(peer, C.PROTOCOL_FRAMES)
  }

  /** A header request to `peer` may come soon (it just announced a new pending build): open its stream now. */
  warmHeader(peer: string): void {
    this.warmStreams.warm(peer, C.PROTOCOL_HEADER)
  }

  /** Warm streams a request took, and warm streams closed unused. */
  get warmStats(): { readonly taken: number; readonly expired: number } {
    return this.warmStreams.stats
  }

  /**
   * The header of a build file. `opts.firstReadAt`: the offset a resume reads first; the peer may send
   * the frame that holds it with the header (`frame`, unverified), saving a frames round trip.
   */
  async getHeader(peer: string, buildId: BuildId, kind: FileKind, opts: HeaderRequestOptions = {}): Promise<HeaderResult> {
    const request = M.GetHeader.encode({ buildId: M.buildIdToWire(buildId), kind: M.kindToWire(kind), firstReadAt: opts.firstReadAt })
    const budget = C.MAX_VARINT_BYTES + C.MAX_HEADER_RESPONSE_BYTES + (opts.firstReadAt === undefined ? 0 : C.MAX_FRAME_BYTES)
    return this.exchange(peer, C.PROTOCOL_HEADER, 'header', request, budget, opts, async (wire) => {
      const res = await wire.readMessage(M.HeaderResponse.decode, C.MAX_HEADER_RESPONSE_BYTES, 'HeaderResponse')
      const status = M.statusFromWire(res.status, 'HeaderResponse')
      if (status !== 'OK') return { status }
      if (res.header.byteLength === 0) throw new PeerProtocolError('HeaderResponse: OK without a header')
      const frame = await this.frameWithHeader(wire, res, opts.firstReadAt !== undefined)
      return frame ? { status, header: res.header, pending: res.pending, frame } : { status, header: res.header, pending: res.pending }
    })
  }

  /** The frame that follows a header answer, when one was asked for and announced (sizes checked before reading). */
  private async frameWithHeader(wire: WireStream, res: { frameStartC: number; frameSizeC: number }, asked: boolean): Promise<FrameWithHeader | undefined> {
    if (res.frameSizeC === 0) return undefined
    if (!asked) throw new PeerProtocolError(`HeaderResponse: a frame of ${res.frameSizeC} bytes that was not asked for`)
    const problem = M.batchProblem([{ startC: res.frameStartC, sizeC: res.frameSizeC }], C.MAX_FRAME_BYTES)
    if (problem) throw new PeerProtocolError(`HeaderResponse: ${problem}`)
    return { startC: res.frameStartC, sizeC: res.frameSizeC, bytes: await wire.readExact(res.frameSizeC) }
  }

  /**
   * The stored bytes of each range of the `codec` copy of the data file, in order. A batch is all or
   * nothing. The codec travels with the request: a peer whose copy has another codec answers
   * NOT_AVAILABLE instead of serving same-offset bytes of another geometry.
   */
  async getFrames(
    peer: string,
    buildId: BuildId,
    kind: FileKind,
    codec: CodecName,
    ranges: readonly FrameRange[],
    opts: FramesRequestOptions = {},
  ): Promise<FramesResult> {
    const problem = M.batchProblem(ranges, this.maxBatchBytes)
    if (problem) throw new InvalidArgumentError(`getFrames: ${problem}`)
    const frames = ranges.map((r) => ({ startC: r.startC, sizeC: r.sizeC }))
    const request = M.GetFrames.encode({ buildId: M.buildIdToWire(buildId), kind: M.kindToWire(kind), codec: M.codecToWire(codec), frames })
    // The response can never legitimately exceed what we asked for: that is the stream's whole budget.
    const budget = C.MAX_VARINT_BYTES + C.MAX_FRAMES_RESPONSE_BYTES + frames.reduce((n, r) => n + r.sizeC, 0)
    const [protocol, name] = opts.relay ? [PROTOCOL_FRAMES_RELAY, 'frames-relay'] : [C.PROTOCOL_FRAMES, 'frames']
    return this.exchange(peer, protocol, name, request, budget, opts, async (wire) => {
      const res = await wire.readMessage(M.decodeFramesResponse, C.MAX_FRAMES_RESPONSE_BYTES, 'FramesResponse')
      const status = M.statusFromWire(res.status, 'FramesResponse')
      if (status !== 'OK') return { status }
      const mismatch = res.lengths.length !== frames.length || res.lengths.some((n, i) => n !== frames[i].sizeC)
      if (mismatch) throw new PeerProtocolError(`FramesResponse: lengths [${res.lengths.slice(0, 8)}] do not match the ${frames.length} frames asked for`)
      const out: Uint8Array[] = []
      for (const [i, n] of res.lengths.entries()) {
        const bytes = await wire.readExact(n)
        out.push(bytes)
        opts.onFrame?.(i, bytes)
      }
      return { status, frames: out }
    })
  }

  async getBlob(peer: string, buildId: BuildId, name: string, opts: RequestOptions = {}): Promise<BlobResult> {
    const request = M.GetBlob.encode({ buildId: M.buildIdToWire(buildId), name })
    const budget = C.MAX_VARINT_BYTES + C.MAX_BLOB_RESPONSE_BYTES + C.MAX_BLOB_BYTES
    return this.exchange(peer, C.PROTOCOL_BLOB, 'blob', request, budget, opts, async (wire) => {
      const res = await wire.readMessage(M.BlobResponse.decode, C.MAX_BLOB_RESPONSE_BYTES, 'BlobResponse')
      const status = M.statusFromWire(res.status, 'BlobResponse')
      if (status !== 'OK') return { status }
      if (!Number.isSafeInteger(res.length) || res.length < 0 || res.length > C.MAX_BLOB_BYTES) {
        throw new PeerProtocolError(`BlobResponse: length ${res.length}, expected 0..${C.MAX_BLOB_BYTES}`)
      }
      return { status, bytes: await wire.readExact(res.length) }
    })
  }

  /** Stop the stall timer (requests in flight keep their deadlines). */
  close(): void {
    this.warmStreams.close()
    this.stallTimer.stop()
  }

  /**
   * A warm stream to `peer` if one was opened ahead (see warmFrames), else a new one. A header or
   * frames request also opens the next one's stream now: reads come in runs (a resume's first pages,
   * a sequential read, a VM's faults), and the next request then skips the negotiation round trip.
   * Unused, it is closed after half the stall limit; the pool's bounds hold.
   */
  private async stream(peer: string, protocol: string, signal: AbortSignal): Promise<RawStream> {
    const warm = this.warmStreams.take(peer, protocol)
    if (REARMED.has(protocol)) this.warmStreams.warm(peer, protocol)
    // Abandoned while the warm stream still opens: it is closed once open, never left dangling.
    const raw = warm && (await raceAbort(warm, signal, () => void warm.then((s) => s?.abort(new Error('request abandoned')))))
    return raw ?? this.host.openStream(peer, protocol, signal)
  }

  /** Open, send one request, half-close, read the answer with `read`; the stream is reset on any failure. */
  private async exchange<T extends { status: string }>(
    peer: string,
    protocol: string,
    name: string,
    request: Uint8Array,
    budget: number,
    opts: RequestOptions,
    read: (wire: WireStream) => Promise<T>,
  ): Promise<T> {
    const t0 = performance.now()
    const signal = withDeadline(opts.signal, opts.timeoutMs ?? this.timeoutMs)
    let outcome = 'error'
    try {
      const raw = await this.stream(peer, protocol, signal)
      const wire = new WireStream(raw, { budget, signal, stallMs: opts.stallMs ?? this.stallMs, stallTimer: this.stallTimer })
      try {
        await wire.writeMessage(request)
        await wire.closeWrite()
        const result = await read(wire)
        wire.finish()
        outcome = result.status
        return result
      } catch (err) {
        throw wire.fail(err)
      }
    } finally {
      this.requests.inc({ protocol: name, outcome })
      this.seconds.observe({ protocol: name }, (performance.now() - t0) / 1000)
    }
  }
}
