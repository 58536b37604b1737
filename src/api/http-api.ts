/**
 * The daemon's local HTTP API (loopback by default). Thin: parses requests, calls the node, maps
 * named errors to status codes. With a token (src/api/auth.ts) every route but the probes needs
 * `Authorization: Bearer <token>`, checked before anything else is done. Routes:
 *   GET  /healthz, /readyz                     liveness, readiness: always open (probes carry no token)
 *   GET  /metrics, /v1/peers
 *   GET  /v1/builds/{id}                       what this node knows of a build
 *   GET  /v1/builds/{id}/{memfile|rootfs}      lazy read through the cluster (Range → 206)
 *   POST /v1/builds/{id}                       pause: frame locally, announce pending, upload (202)
 *   GET|POST /v1/exports, DELETE /v1/exports?name=…   NBD exports: list, start, stop
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type ErrorCode, SnapswarmError } from '../errors.ts'
import type { FileKind } from '../format/types.ts'
import { isBuildId } from '../format/uuid.ts'
import type { FileHandleLike } from '../switchover/open-files.ts'
import type { Logger } from '../obs/log.ts'
import { counter, type Registry } from '../obs/metrics.ts'
import { type RangeResponseDeps, sendRange } from './range-response.ts'
import { BusyError, type ResponseBudget } from './response-budget.ts'
import { BearerCheck, type BearerVerdict, isLoopbackHost, splitHostPort } from './auth.ts'

export interface ApiHandlers {
  health(): { ok: boolean; [k: string]: unknown }
  ready(): boolean
  metrics(): Promise<{ contentType: string; body: string }>
  peers(): unknown
  buildInfo(id: string): Promise<unknown | null>
  /** Size of the virtual file, then a reader of ranges (an OpenFiles handle). */
  /** `opts.firstReadAt`: where the request reads first (from its Range header, before the size is known). */
  openRead(id: string, kind: FileKind, signal: AbortSignal, opts?: { firstReadAt?: number }): Promise<Pick<FileHandleLike, 'size' | 'read' | 'readInto' | 'close'>>
  pause(id: string, body: unknown): Promise<unknown>
  /** NBD exports (src/nbd): list, start, stop. */
  exports?: {
    list(): Promise<unknown>
    start(body: unknown): Promise<unknown>
    stop(name: string, discard: boolean): Promise<boolean>
  }
}

const MAX_BODY = 64 * 1024
/** A Range answer is read and sent this much at a time: big enough to stream whole frames, small enough to start at once. */
export const READ_CHUNK = 8 * 1024 * 1024
/**
 * The HTTP status of every error code (total: a new code does not compile until it has one).
 * Client mistakes are 4xx; everything else is the server's: 502 when what failed is upstream
 * (storage, a peer, an upload, data that does not verify), 503 when the node is busy or stopping,
 * 500 for the node's own faults and for codes only the command line raises.
 */
const STATUS_BY_CODE: Record<ErrorCode, number> = {
  ERR_INVALID_ARGUMENT: 400, ERR_CONFIG: 400, ERR_USAGE: 400, ERR_LIMIT: 400,
  // A pause's input (src/origin/pause-input.ts): a path that is not a readable regular file; no room to record it.
  ERR_NOT_REGULAR_FILE: 400, ERR_FILE_NOT_FOUND: 400, ERR_FILE_UNREADABLE: 400, ERR_NO_SPACE: 507,
  ERR_UNAUTHORIZED: 401, ERR_FORBIDDEN: 403, ERR_NOT_FOUND: 404, ERR_BUILD_UNAVAILABLE: 404, ERR_BUILD_EXISTS: 409,
  ERR_UPLOAD_FAILED: 502, ERR_CORRUPT_FRAME: 502, ERR_FRAME_UNAVAILABLE: 502, ERR_SWITCHOVER: 502, ERR_STORAGE: 502,
  // A stored object shorter than its header says; a peer that broke the protocol, stalled or reset the stream.
  ERR_RANGE: 502, ERR_PEER_PROTOCOL: 502, ERR_PEER_STALL: 502, ERR_PEER_STREAM: 502,
  ERR_SHUTDOWN: 503, ERR_CACHE_CLOSED: 503, ERR_BUSY: 503,
  // The node's own faults: a multipart upload used out of order is a bug, as are malformed data it wrote itself.
  ERR_UPLOAD_STATE: 500, ERR_INTERNAL: 500, ERR_FORMAT: 500, ERR_VERIFY_FAILED: 500, ERR_UNVERIFIABLE: 500, ERR_SOURCE_CHANGED: 500,
  ERR_PAUSE_RECORD: 500, ERR_OBJECT_EXISTS: 500, ERR_BUCKET_NOT_FOUND: 500, ERR_ADMISSION_CONFIG: 500, ERR_NBD_PROTOCOL: 500,
  ERR_NBD_COMMAND: 500, ERR_PERMISSION: 500, ERR_FILE_EXISTS: 500, ERR_IS_DIRECTORY: 500, ERR_NOT_A_DIRECTORY: 500,
  ERR_ADDR_IN_USE: 500, ERR_ADDR_NOT_AVAILABLE: 500, ERR_NODE_VERSION: 500,
  // Never answered: the client is gone (ERR_CLIENT_GONE), or the status went out before (ERR_SEND_TIMEOUT).
  ERR_CLIENT_GONE: 500, ERR_SEND_TIMEOUT: 500,
  // Raised by the command line only, never by the node.
  ERR_UNREACHABLE: 500, ERR_REMOTE: 500, ERR_INTERRUPTED: 500, ERR_STDOUT_CLOSED: 500,
}

/** The status the API answers an error with: its code's, or 500 for an error without one. */
export function httpStatusFor(err: unknown): number {
  return err instanceof SnapswarmError ? (STATUS_BY_CODE[err.code] ?? 500) : 500
}

/** The client closed the connection before its answer was complete. */
class ClientGoneError extends SnapswarmError {
  constructor() {
    super('ERR_CLIENT_GONE', 'the client closed the connection before the answer was complete')
  }
}

export interface HttpApiOptions {
  /** The bearer token every route but /healthz and /readyz requires (none: open, for loopback only). */
  readonly token?: string
  /** The node-wide budget of bytes Range answers hold in memory. */
  readonly budget: ResponseBudget
  /** A client that takes none of the bytes sent to it for this long is cut. */
  readonly sendTimeoutMs: number
  readonly registry?: Registry
}

export class HttpApi {
  private readonly server: Server
  private readonly handlers: ApiHandlers
  private readonly log: Logger
  private readonly auth?: BearerCheck
  private readonly range: RangeResponseDeps

  constructor(handlers: ApiHandlers, log: Logger, opts: HttpApiOptions) {
    this.handlers = handlers
    this.log = log
    if (opts.token) this.auth = new BearerCheck(opts.token)
    const cut = opts.registry && counter(opts.registry, 'snapswarm_http_responses_cut_total', 'HTTP answers the node ended early after the status went out, by reason (send_timeout: the client took no bytes; read_failed)', ['reason'])
    this.range = { budget: opts.budget, sendTimeoutMs: opts.sendTimeoutMs, log, cut }
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err) => this.fail(res, err))
    })
  }

  async listen(hostPort: string): Promise<string> {
    const { host, port } = splitHostPort(hostPort)
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => resolve())
    })
    const addr = this.server.address() as AddressInfo
    return `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
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
    const verdict = this.auth?.check(req.headers.authorization) ?? 'ok'
    if (verdict !== 'ok') {
      this.log.debug({ remote: req.socket.remoteAddress, method: req.method, path: url.pathname, verdict }, 'unauthorized request')
      return unauthorized(res, verdict)
    }
    // Without a token the API trusts whoever reaches the loopback address, and a web page in a browser
    // on this host can reach it too: through DNS rebinding (its own host name pointed at 127.0.0.1:
    // same origin, any request) or a cross-site "simple" POST (text/plain, no preflight). So: a
    // loopback Host header only, and a POST must say application/json, which no page can send to
    // another origin without a CORS preflight this server never grants.
    if (!this.auth && !isLoopbackHostHeader(req.headers.host)) {
      return json(res, 403, { error: 'ERR_FORBIDDEN', message: `Host '${req.headers.host ?? ''}' is not a loopback name; without node.apiTokenFile the API answers loopback hosts only` })
    }
    if (req.method === 'POST' && mediaType(req.headers['content-type']) !== 'application/json') {
      return json(res, 415, { error: 'ERR_INVALID_ARGUMENT', message: 'a POST body must be sent as content-type: application/json' })
    }
    if (req.method === 'GET' && url.pathname === '/metrics') {
      const m = await this.handlers.metrics()
      res.writeHead(200, { 'content-type': m.contentType })
      return void res.end(m.body)
    }
    if (req.method === 'GET' && url.pathname === '/v1/peers') return json(res, 200, this.handlers.peers())
    if (url.pathname === '/v1/exports' && this.handlers.exports) return this.routeExports(req, res, url, this.handlers.exports)
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

  private async routeExports(req: IncomingMessage, res: ServerResponse, url: URL, exports: NonNullable<ApiHandlers['exports']>): Promise<void> {
    if (req.method === 'GET') return json(res, 200, await exports.list())
    if (req.method === 'POST') return json(res, 201, await exports.start(await readJson(req)))
    if (req.method === 'DELETE') {
      const name = url.searchParams.get('name') ?? ''
      const found = await exports.stop(name, url.searchParams.get('discard') === 'true')
      return found ? json(res, 200, { name, stopped: true }) : json(res, 404, { error: 'ERR_NOT_FOUND', message: `no NBD export named ${JSON.stringify(name.slice(0, 200))}` })
    }
    json(res, 405, { error: 'ERR_INVALID_ARGUMENT', message: `expected GET, POST or DELETE on /v1/exports, found ${req.method}` })
  }

  private async serveRange(req: IncomingMessage, res: ServerResponse, id: string, kind: FileKind): Promise<void> {
    const abort = new AbortController()
    // The client going away ends this request's reads and budget waits; its file is released below.
    res.on('close', () => abort.abort(new ClientGoneError()))
    const file = await this.handlers.openRead(id, kind, abort.signal, { firstReadAt: firstReadAtOf(req.headers.range) })
    try {
      const range = parseRange(req.headers.range, file.size)
      if (range === 'unsatisfiable') {
        res.writeHead(416, { 'content-range': `bytes */${file.size}` })
        return void res.end()
      }
      const [start, end] = range ?? [0, file.size - 1]
      await sendRange(this.range, { res, file, start, end, partial: range !== null, abort, what: { buildId: id, kind } })
    } finally {
      await file.close()
    }
  }

  private fail(res: ServerResponse, err: unknown): void {
    if (err instanceof ClientGoneError || res.destroyed) {
      this.log.debug({ err }, 'request ended: the client went away')
      return void res.destroy()
    }
    const code = err instanceof SnapswarmError ? err.code : 'ERR_INTERNAL'
    const status = httpStatusFor(err)
    if (status >= 500 && code !== 'ERR_BUSY') this.log.warn({ err }, 'request failed')
    if (res.headersSent) return void res.destroy(err as Error)
    const headers = err instanceof BusyError ? { 'retry-after': String(err.retryAfterSec) } : undefined
    json(res, status, { error: code, message: (err as Error).message }, headers)
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

/**
 * 401 before the body is read or anything is opened. `connection: close`: Node would otherwise
 * drain an unread request body, of any size, to keep the connection alive for a client it refused.
 */
function unauthorized(res: ServerResponse, verdict: Exclude<BearerVerdict, 'ok'>): void {
  const message = verdict === 'missing' ? 'this API needs an Authorization: Bearer <token> header (the node has node.apiTokenFile set)' : 'the bearer token is not this node\'s'
  const text = JSON.stringify({ error: 'ERR_UNAUTHORIZED', message })
  res.writeHead(401, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    // RFC 6750 §3: no error code when the request carried no credentials, invalid_token when it did.
    'www-authenticate': verdict === 'missing' ? 'Bearer' : 'Bearer error="invalid_token"',
    connection: 'close',
  })
  res.end(text)
}

function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0].trim().toLowerCase()
}

/** A Host header naming a loopback address or localhost (any port). */
function isLoopbackHostHeader(host: string | undefined): boolean {
  if (!host) return false
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(host)
  if (!m) return false
  const name = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1]
  return isLoopbackHost(name)
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

/**
 * Where a GET reads first, known before the file's size: 0 without a Range header, the start of an
 * explicit `bytes=N-` range, otherwise (a suffix range, anything else) unknown. Only a hint for the
 * header lookup (the frame holding it may come with a pending header); the range is parsed properly later.
 */
function firstReadAtOf(range: string | undefined): number | undefined {
  if (range === undefined) return 0
  const m = /^bytes=(\d{1,15})-/.exec(range.trim())
  return m ? Number(m[1]) : undefined
}
