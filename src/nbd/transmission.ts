/**
 * The transmission phase of one NBD connection. Requests are read one after another and run
 * concurrently; each reply is written whole as soon as its request completes, so replies go out of
 * order. A connection holds at most `maxInFlight` requests and `maxInFlightBytes` of payload (read
 * data waiting for the socket, write data waiting for the overlay): beyond that it stops reading the
 * socket until replies drain, so neither 1,000 outstanding requests nor a client that never reads
 * its replies can grow the node's memory. A bad request gets its NBD error; only a broken request
 * header (wrong magic, so the stream cannot be followed) closes the connection.
 */
import type { Socket } from 'node:net'
import { SnapswarmError } from '../errors.ts'
import type { Logger } from '../obs/log.ts'
import type { NbdExport } from './exports.ts'
import { MAX_PAYLOAD, type Negotiated } from './handshake.ts'
import {
  BASE_ALLOCATION_ID,
  blockStatusChunk,
  CMD,
  CMD_FLAG,
  COMMAND_NAMES,
  chunkHeader,
  errorChunk,
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOSPC,
  NBD_EOVERFLOW,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  NbdCommandError,
  type NbdRequest,
  parseRequest,
  REPLY_FLAG_DONE,
  REPLY_TYPE,
  REQUEST_BYTES,
  simpleReplyHeader,
  writeChunkHeader,
  writeSimpleReplyHeader,
} from './protocol.ts'
import type { ReplyBuffers } from './reply-buffers.ts'
import { ClientClosedError, type SocketReader } from './socket-reader.ts'

export interface TransmissionLimits {
  readonly maxInFlight: number
  readonly maxInFlightBytes: number
  /** Reply buffers shared by the server's connections. */
  readonly buffers: ReplyBuffers
  /** Payload bytes in flight on all connections together. */
  readonly shared: SharedBytes
}

/**
 * The node-wide bound on payload bytes in flight, on top of each connection's: many connections
 * each within their own budget hold at most `max` together, plus the one request each connection
 * may always have (Transmission.room).
 */
export class SharedBytes {
  readonly max: number
  used = 0
  private readonly waiters = new Set<() => void>()

  constructor(max: number) {
    this.max = max
  }

  fits(n: number): boolean {
    return this.used + n <= this.max
  }

  change(n: number): void {
    this.used += n
    if (n < 0) for (const w of [...this.waiters]) w()
  }

  on(w: () => void): void {
    this.waiters.add(w)
  }

  off(w: () => void): void {
    this.waiters.delete(w)
  }
}

/** NBD_CMD_CACHE reads this much at a time, and at most MAX_CACHE per request. */
const CACHE_STEP = 2 * 1024 * 1024
const MAX_CACHE = 256 * 1024 * 1024

/** Bytes a request holds in memory while it runs: a refused oversized write's payload is skipped, not held. */
function payloadOf(req: NbdRequest): number {
  if (req.type === CMD.WRITE) return req.length > MAX_PAYLOAD ? 0 : req.length
  if (req.type === CMD.READ) return Math.min(req.length, MAX_PAYLOAD)
  if (req.type === CMD.CACHE) return Math.min(req.length, CACHE_STEP)
  return 0
}

/** Block status answers carry at most this many extents (the protocol asks for ≤ 2^20). */
const MAX_EXTENTS = 16_384
const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 5: 'EIO', 12: 'ENOMEM', 22: 'EINVAL', 28: 'ENOSPC', 75: 'EOVERFLOW', 95: 'ENOTSUP', 108: 'ESHUTDOWN' }

export class Transmission {
  private readonly sock: Socket
  private readonly reader: SocketReader
  private readonly exp: NbdExport
  private readonly neg: Negotiated
  private readonly limits: TransmissionLimits
  private readonly log: Logger
  /** Aborted when the connection ends: reads still fetching stop waiting. */
  private readonly abort = new AbortController()
  private inFlight = 0
  private inFlightBytes = 0
  private wake: (() => void) | null = null

  constructor(sock: Socket, reader: SocketReader, neg: Negotiated, limits: TransmissionLimits, log: Logger) {
    this.sock = sock
    this.reader = reader
    this.exp = neg.export
    this.neg = neg
    this.limits = limits
    this.log = log
    sock.once('close', () => {
      this.abort.abort(new SnapswarmError('ERR_CLIENT_GONE', 'the NBD client closed the connection'))
      this.poke()
    })
  }

  /** Serve requests until the client disconnects (NBD_CMD_DISC or the socket closes). */
  async run(): Promise<void> {
    for (;;) {
      if (this.blocked(0)) await this.room(0)
      const req = parseRequest(await this.reader.read(REQUEST_BYTES))
      if (req.type === CMD.DISC) {
        await this.drained()
        return
      }
      const payload = payloadOf(req)
      if (this.blocked(payload)) await this.room(payload)
      this.inFlight++
      this.inFlightBytes += payload
      this.limits.shared.change(payload)
      let data: Buffer | undefined
      if (req.type === CMD.WRITE) {
        if (req.length > MAX_PAYLOAD) {
          await this.reader.skip(req.length)
          this.finish(req, payload, performance.now(), new NbdCommandError(NBD_EOVERFLOW, `write of ${req.length} bytes, expected at most ${MAX_PAYLOAD}`))
          continue
        }
        data = await this.reader.read(req.length)
      }
      const started = performance.now()
      this.execute(req, data).then(
        (reply) => this.finish(req, payload, started, null, reply),
        (err: unknown) => this.finish(req, payload, started, err),
      )
    }
  }

  /** Wait until one more request of `bytes` payload fits (one alone always fits). */
  private async room(bytes: number): Promise<void> {
    const { shared } = this.limits
    while (this.blocked(bytes)) {
      if (this.sock.destroyed) throw new ClientClosedError(0)
      // Woken by this connection's own replies, or by any connection giving bytes back.
      await new Promise<void>((resolve) => {
        const done = () => {
          shared.off(done)
          this.wake = null
          resolve()
        }
        this.wake = done
        shared.on(done)
      })
    }
  }

  /**
   * Whether one more request of `bytes` payload must wait. A connection with nothing in flight always
   * gets one: clients that fill the shared budget (and never read) cannot stop another from being served.
   */
  private blocked(bytes: number): boolean {
    const { maxInFlight, maxInFlightBytes, shared } = this.limits
    return this.inFlight >= maxInFlight || (this.inFlight > 0 && (this.inFlightBytes + bytes > maxInFlightBytes || !shared.fits(bytes)))
  }

  private async drained(): Promise<void> {
    while (this.inFlight > 0 && !this.sock.destroyed) {
      await new Promise<void>((resolve) => {
        this.wake = resolve
      })
    }
  }

  private poke(): void {
    const w = this.wake
    this.wake = null
    w?.()
  }

  /** Run one command; resolves with the reply's buffers (the request's cookie already in them). */
  private async execute(req: NbdRequest, data: Buffer | undefined): Promise<Reply> {
    const exp = this.exp
    switch (req.type) {
      case CMD.READ: {
        this.checkRange(req, NBD_EINVAL)
        if (req.length > MAX_PAYLOAD) throw new NbdCommandError(NBD_EOVERFLOW, `read of ${req.length} bytes, expected at most ${MAX_PAYLOAD}`)
        // Header and data in one (reused) buffer: one write, one syscall per reply.
        const head = this.neg.structured ? 28 : 16
        const pooled = this.limits.buffers.take(head + req.length)
        const reply = pooled.subarray(0, head + req.length)
        if (this.neg.structured) {
          writeChunkHeader(reply, req.cookie, REPLY_FLAG_DONE, REPLY_TYPE.OFFSET_DATA, 8 + req.length)
          reply.writeBigUInt64BE(BigInt(req.offset), 20)
        } else {
          writeSimpleReplyHeader(reply, req.cookie, 0)
        }
        try {
          await exp.read(reply.subarray(head), req.offset, this.abort.signal)
        } catch (err) {
          this.limits.buffers.give(pooled)
          throw err
        }
        exp.recordBytes('read', req.length)
        return { parts: [reply], pooled }
      }
      case CMD.WRITE:
      case CMD.WRITE_ZEROES:
      case CMD.TRIM: {
        if (exp.readOnly) throw new NbdCommandError(NBD_EPERM, `export ${exp.name} is read-only`)
        this.checkRange(req, NBD_ENOSPC)
        if (req.type === CMD.WRITE) {
          await exp.write(data!, req.offset)
          exp.recordBytes('write', req.length)
        } else if (req.length > 0) {
          if (req.type === CMD.WRITE_ZEROES && req.flags & CMD_FLAG.FAST_ZERO) throw new NbdCommandError(NBD_EINVAL, 'fast zero was not offered')
          await exp.zero(req.offset, req.length)
        }
        if (req.flags & CMD_FLAG.FUA) await exp.flush()
        return this.ok(req)
      }
      case CMD.FLUSH:
        await exp.flush()
        return this.ok(req)
      case CMD.CACHE:
        await this.cache(req)
        return this.ok(req)
      case CMD.BLOCK_STATUS: {
        if (!this.neg.blockStatus) throw new NbdCommandError(NBD_EINVAL, 'no metadata context was selected for this export')
        this.checkRange(req, NBD_EINVAL)
        if (req.length === 0) throw new NbdCommandError(NBD_EINVAL, 'block status of 0 bytes')
        const one = (req.flags & CMD_FLAG.REQ_ONE) !== 0
        const extents = exp.extents(req.offset, req.length, one ? 1 : MAX_EXTENTS)
        return { parts: [blockStatusChunk(req.cookie, BASE_ALLOCATION_ID, extents)] }
      }
      default:
        throw new NbdCommandError(NBD_EINVAL, `command ${req.type} is not supported`)
    }
  }

  /** NBD_CMD_CACHE: read the range through the read path (frames land in the node's caches), a step at a time, and drop the bytes. */
  private async cache(req: NbdRequest): Promise<void> {
    if (req.flags & ~CMD_FLAG.FUA) throw new NbdCommandError(NBD_EINVAL, `cache takes no flags but FUA, found 0x${req.flags.toString(16)}`)
    this.checkRange(req, NBD_EINVAL)
    if (req.length > MAX_CACHE) throw new NbdCommandError(NBD_EOVERFLOW, `cache of ${req.length} bytes, expected at most ${MAX_CACHE}`)
    const scratch = this.limits.buffers.take(Math.min(req.length, CACHE_STEP))
    try {
      for (let at = req.offset; at < req.offset + req.length; at += scratch.byteLength) {
        const n = Math.min(scratch.byteLength, req.offset + req.length - at)
        await this.exp.read(scratch.subarray(0, n), at, this.abort.signal)
      }
    } finally {
      this.limits.buffers.give(scratch)
    }
  }

  private checkRange(req: NbdRequest, errno: number): void {
    if (!(req.offset + req.length <= this.exp.size)) {
      throw new NbdCommandError(errno, `range ${req.offset}+${req.length} is beyond the export's ${this.exp.size} bytes`)
    }
  }

  private ok(req: NbdRequest): Reply {
    return { parts: [this.neg.structured ? chunkHeader(req.cookie, REPLY_FLAG_DONE, REPLY_TYPE.NONE, 0) : simpleReplyHeader(req.cookie, 0)] }
  }

  /** Send the reply (or the error), then give its payload back to the budget once the socket took it. */
  private finish(req: NbdRequest, payload: number, started: number, err: unknown, reply?: Reply): void {
    const command = COMMAND_NAMES[req.type] ?? 'unknown'
    let errno = 0
    if (err) {
      errno = errnoOf(err)
      if (errno === NBD_EIO || errno === NBD_ESHUTDOWN) this.log.warn({ err, export: this.exp.name, command, offset: req.offset, length: req.length }, 'NBD request failed')
      const message = (err as Error).message ?? String(err)
      reply = { parts: [this.neg.structured ? errorChunk(req.cookie, errno, message) : simpleReplyHeader(req.cookie, errno)] }
    }
    this.exp.recordRequest(command, errno === 0 ? 'ok' : (ERRNO_NAMES[errno] ?? String(errno)), (performance.now() - started) / 1000)
    const { parts, pooled } = reply!
    const release = () => {
      this.inFlight--
      this.inFlightBytes -= payload
      this.limits.shared.change(-payload)
      if (pooled) this.limits.buffers.give(pooled) // the socket is done with it
      this.poke()
    }
    if (this.sock.destroyed || !this.sock.writable) {
      release()
      return
    }
    for (let i = 0; i < parts.length - 1; i++) this.sock.write(parts[i])
    this.sock.write(parts[parts.length - 1], () => release())
  }
}

interface Reply {
  readonly parts: Buffer[]
  /** A pooled buffer the reply lives in, given back once the socket took it. */
  readonly pooled?: Buffer
}

function errnoOf(err: unknown): number {
  if (err instanceof NbdCommandError) return err.errno
  const code = (err as { code?: string }).code
  if (code === 'ERR_INVALID_ARGUMENT') return NBD_EINVAL
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG' || code === 'ERR_NO_SPACE') return NBD_ENOSPC
  if (code === 'ERR_SHUTDOWN' || code === 'ERR_CACHE_CLOSED') return NBD_ESHUTDOWN
  return NBD_EIO
}
