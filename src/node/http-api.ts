/**
 * The daemon's local HTTP API (loopback by default). Thin: parses requests, calls the node, maps
 * named errors to status codes. Routes:
 *   GET  /healthz, /readyz, /metrics, /v1/peers
 *   GET  /v1/builds/{id}                       what this node knows of a build
 *   GET  /v1/builds/{id}/{memfile|rootfs}      lazy read through the cluster (Range → 206)
 *   POST /v1/builds/{id}                       pause: frame locally, announce pending, upload (202)
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SnapswarmError } from '../format/errors.ts'
import type { FileKind } from '../format/types.ts'
import { isBuildId } from '../format/uuid.ts'
import type { Logger } from '../obs/log.ts'

export interface ApiHandlers {
  health(): { ok: boolean; [k: string]: unknown }
  ready(): boolean
  metrics(): Promise<{ contentType: string; body: string }>
  peers(): unknown
  buildInfo(id: string): Promise<unknown | null>
  /** Size of the virtual file, then a reader of ranges. */
  openRead(id: string, kind: FileKind, signal: AbortSignal): Promise<{ size: number; read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>; close(): Promise<void> }>
  pause(id: string, body: unknown): Promise<unknown>
}

const MAX_BODY = 64 * 1024
/** Client mistakes are 4xx; everything else (storage, peers, corrupt data, shutdown) is the server's: 5xx. */
const STATUS_BY_CODE: Record<string, number> = {
  ERR_INVALID_ARGUMENT: 400, ERR_CONFIG: 400, ERR_USAGE: 400, ERR_LIMIT: 400, ERR_BUILD_EXISTS: 409, ERR_NOT_FOUND: 404,
  ERR_BUILD_UNAVAILABLE: 404, ERR_UPLOAD_FAILED: 502, ERR_CORRUPT_FRAME: 502, ERR_FRAME_UNAVAILABLE: 502,
  ERR_SWITCHOVER: 502, ERR_STORAGE: 502, ERR_SHUTDOWN: 503, ERR_CACHE_CLOSED: 503,
}

export class HttpApi {
  private readonly server: Server
  private readonly handlers: ApiHandlers
  private readonly log: Logger

  constructor(handlers: ApiHandlers, log: Logger) {
    this.handlers = handlers
    this.log = log
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err) => this.fail(res, err))
    })
  }

  async listen(hostPort: string): Promise<string> {
    const i = hostPort.lastIndexOf(':')
    const host = hostPort.slice(0, i)
    const port = Number(hostPort.slice(i + 1))
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => resolve())
    })
    const addr = this.server.address() as AddressInfo
    return `http://${addr.address}:${addr.port}`
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x')
    const parts = url.pathname.split('/').filter(Boolean)
    if (req.method === 'GET' && url.pathname === '/healthz') return json(res, 200, this.handlers.health())
    if (req.method === 'GET' && url.pathname === '/readyz') return json(res, this.handlers.ready() ? 200 : 503, { ready: this.handlers.ready() })
    if (req.method === 'GET' && url.pathname === '/metrics') {
      const m = await this.handlers.metrics()
      res.writeHead(200, { 'content-type': m.contentType })
      return void res.end(m.body)
    }
    if (req.method === 'GET' && url.pathname === '/v1/peers') return json(res, 200, this.handlers.peers())
    if (parts[0] === 'v1' && parts[1] === 'builds' && parts[2]) {
      if (!isBuildId(parts[2])) return json(res, 400, { error: 'ERR_INVALID_ARGUMENT', message: `expected a build id (UUID), found '${parts[2]}'` })
      if (parts.length === 3 && req.method === 'GET') {
        const info = await this.handlers.buildInfo(parts[2])
        return info ? json(res, 200, info) : json(res, 404, { error: 'ERR_NOT_FOUND', message: `build ${parts[2]} is not known to this node or storage` })
      }
      if (parts.length === 3 && req.method === 'POST') return json(res, 202, await this.handlers.pause(parts[2], await readJson(req)))
      if (parts.length === 4 && req.method === 'GET' && (parts[3] === 'memfile' || parts[3] === 'rootfs')) return this.serveRange(req, res, parts[2], parts[3])
    }
    json(res, 404, { error: 'ERR_NOT_FOUND', message: `no route ${req.method} ${url.pathname}` })
  }

  private async serveRange(req: IncomingMessage, res: ServerResponse, id: string, kind: FileKind): Promise<void> {
    const abort = new AbortController()
    res.on('close', () => abort.abort())
    const file = await this.handlers.openRead(id, kind, abort.signal)
    try {
      const range = parseRange(req.headers.range, file.size)
      if (range === 'unsatisfiable') {
        res.writeHead(416, { 'content-range': `bytes */${file.size}` })
        return void res.end()
      }
      const [start, end] = range ?? [0, file.size - 1]
      // Read before writing headers, so a failure becomes a proper error status rather than a cut body.
      const first = await file.read(start, Math.min(end - start + 1, 8 * 1024 * 1024), abort.signal)
      res.writeHead(range ? 206 : 200, {
        'content-type': 'application/octet-stream',
        'content-length': String(end - start + 1),
        ...(range ? { 'content-range': `bytes ${start}-${end}/${file.size}` } : {}),
      })
      let pos = start + first.byteLength
      if (!res.write(first)) await waitDrain(res)
      while (pos <= end && !abort.signal.aborted) {
        const chunk = await file.read(pos, Math.min(end - pos + 1, 8 * 1024 * 1024), abort.signal)
        pos += chunk.byteLength
        if (!res.write(chunk)) await waitDrain(res)
      }
      res.end()
    } finally {
      await file.close()
    }
  }

  private fail(res: ServerResponse, err: unknown): void {
    const code = err instanceof SnapswarmError ? err.code : 'ERR_INTERNAL'
    const status = STATUS_BY_CODE[code] ?? 500
    if (status >= 500) this.log.warn({ err }, 'request failed')
    if (res.headersSent) return void res.destroy(err as Error)
    json(res, status, { error: code, message: (err as Error).message })
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of req) {
    size += (c as Buffer).byteLength
    if (size > MAX_BODY) throw new SnapswarmError('ERR_INVALID_ARGUMENT', `request body larger than ${MAX_BODY} bytes`)
    chunks.push(c as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}')
  } catch {
    throw new SnapswarmError('ERR_INVALID_ARGUMENT', 'request body is not valid JSON')
  }
}

/** A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range; multi-range requests are served whole. */
export function parseRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | null {
  if (!header) return null
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!m || (m[1] === '' && m[2] === '')) return null
  let start: number
  let end: number
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]))
    end = size - 1
  } else {
    start = Number(m[1])
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  }
  if (start >= size || start > end) return 'unsatisfiable'
  return [start, end]
}

function waitDrain(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.once('drain', done)
    res.once('close', done)
  })
}
