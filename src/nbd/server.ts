/**
 * The node's NBD server: a unix socket (under the data dir by default) and optionally a TCP address.
 * Each connection goes through the handshake (src/nbd/handshake.ts) within a bounded time, then
 * serves one export (src/nbd/transmission.ts) until the client leaves or the export stops. A
 * connection's failure never touches another connection or export.
 */
import { chmod, lstat, rm } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { SnapswarmError } from '../errors.ts'
import type { Logger } from '../obs/log.ts'
import { type Counter, counter, type Registry } from '../obs/metrics.ts'
import type { ExportRegistry } from './exports.ts'
import { Handshake } from './handshake.ts'
import { NbdProtocolError } from './protocol.ts'
import { ClientClosedError, SocketReader } from './socket-reader.ts'
import { ReplyBuffers } from './reply-buffers.ts'
import { SharedBytes, Transmission, type TransmissionLimits } from './transmission.ts'

/** Read reply buffers kept for reuse across connections. */
const KEPT_REPLY_BYTES = 64 * 1024 * 1024

export interface NbdServerOptions extends Omit<TransmissionLimits, 'buffers' | 'shared'> {
  /** Payload bytes in flight on all connections together. */
  readonly maxInFlightBytesTotal: number
  /** Unix socket path (created 0600; a stale socket file is replaced), or undefined for none. */
  readonly socketPath?: string
  /** TCP `host:port`, or undefined for none. */
  readonly tcp?: { host: string; port: number }
  readonly maxConnections: number
  /** A client that has not picked an export within this time is disconnected. */
  readonly handshakeTimeoutMs: number
  readonly exports: ExportRegistry
  readonly registry: Registry
  readonly log: Logger
}

export class NbdServer {
  private readonly opts: NbdServerOptions
  private readonly servers: Server[] = []
  private readonly sockets = new Set<Socket>()
  private readonly refused: Counter<'reason'>
  private readonly limits: TransmissionLimits
  private closing = false
  private ownsSocket = false
  /** Where it listens: `unix:/path` and/or `tcp:host:port`. */
  readonly addresses: string[] = []

  constructor(opts: NbdServerOptions) {
    this.opts = opts
    this.limits = {
      maxInFlight: opts.maxInFlight,
      maxInFlightBytes: opts.maxInFlightBytes,
      buffers: new ReplyBuffers(KEPT_REPLY_BYTES),
      shared: new SharedBytes(opts.maxInFlightBytesTotal),
    }
    this.refused = counter(opts.registry, 'snapswarm_nbd_connections_refused_total', 'NBD connections closed before serving: too many, handshake timeout or protocol error', ['reason']) as Counter<'reason'>
  }

  async listen(): Promise<void> {
    const { socketPath, tcp } = this.opts
    if (socketPath) {
      await removeStaleSocket(socketPath)
      const s = await this.listenOn((srv, cb) => srv.listen(socketPath, cb))
      this.ownsSocket = true
      await chmod(socketPath, 0o600)
      this.addresses.push(`unix:${socketPath}`)
      this.servers.push(s)
    }
    if (tcp) {
      const s = await this.listenOn((srv, cb) => srv.listen(tcp.port, tcp.host, cb))
      const a = s.address() as { address: string; port: number }
      this.addresses.push(`tcp:${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`)
      this.servers.push(s)
    }
  }

  async close(): Promise<void> {
    this.closing = true
    for (const s of this.sockets) s.destroy()
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
    // Only a socket this server created: a file found at the path (start refused) is not ours.
    if (this.opts.socketPath && this.ownsSocket) await rm(this.opts.socketPath, { force: true })
  }

  private listenOn(start: (srv: Server, cb: () => void) => void): Promise<Server> {
    const srv = createServer({ pauseOnConnect: true, noDelay: true }, (sock) => this.accept(sock))
    return new Promise((resolve, reject) => {
      srv.once('error', reject)
      start(srv, () => {
        srv.off('error', reject)
        srv.on('error', (err) => this.opts.log.error({ err }, 'NBD listener failed'))
        resolve(srv)
      })
    })
  }

  private accept(sock: Socket): void {
    if (this.closing || this.sockets.size >= this.opts.maxConnections) {
      this.refused.inc({ reason: this.closing ? 'shutdown' : 'too_many' })
      sock.destroy()
      return
    }
    this.sockets.add(sock)
    sock.once('close', () => this.sockets.delete(sock))
    sock.on('error', () => {}) // reset by the client: the close handler cleans up
    this.serve(sock).catch((err) => {
      if (!(err instanceof ClientClosedError)) {
        const reason = err instanceof NbdProtocolError ? 'protocol' : 'error'
        this.refused.inc({ reason })
        this.opts.log.info({ err: (err as Error).message }, 'NBD connection closed')
      }
      sock.destroy()
    })
  }

  private async serve(sock: Socket): Promise<void> {
    const reader = new SocketReader(sock)
    const timer = setTimeout(() => {
      this.refused.inc({ reason: 'handshake_timeout' })
      sock.destroy(new SnapswarmError('ERR_NBD_PROTOCOL', `no export chosen within ${this.opts.handshakeTimeoutMs} ms`))
    }, this.opts.handshakeTimeoutMs)
    let neg: Awaited<ReturnType<Handshake['run']>>
    try {
      neg = await new Handshake(sock, reader, this.opts.exports).run()
    } finally {
      clearTimeout(timer)
    }
    if (!neg) return void sock.end()
    const exp = neg.export
    const detach = exp.attach(() => sock.destroy())
    try {
      await new Transmission(sock, reader, neg, this.limits, this.opts.log).run()
      sock.end()
    } finally {
      detach()
      this.opts.exports.released(exp)
    }
  }
}

/** A socket file left by a previous run is removed; any other file at the path is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => null)
  if (!st) return
  if (!st.isSocket()) throw new SnapswarmError('ERR_CONFIG', `nbd.socket ${path} exists and is not a socket; expected a free path`)
  await rm(path, { force: true })
}
