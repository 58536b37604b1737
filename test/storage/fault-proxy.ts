/**
 * A small HTTP proxy on 127.0.0.1 in front of fake-gcs-server that injects faults: for each request a
 * plan decides whether to forward it, answer 500, drop the connection, stall forever, or send half of
 * the server's answer (then cut or stall). It records
 * every request (method, URL, the headers that matter), so tests can also check what the client sent.
 */
import { type IncomingMessage, request as httpRequest, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * `cutBody` / `stallBody`: the request reaches the server, its status and headers come back, then only
 * the first half of the body; then the connection is cut, or held open with nothing more sent.
 */
/** `landedDrop`: the request reaches the server, then the client's connection is reset before any answer. */
export type Fault = 'pass' | 'fail500' | 'drop' | 'stall' | 'cutBody' | 'stallBody' | 'landedDrop'

export interface SeenRequest {
  index: number
  method: string
  url: string
  contentLength: string | undefined
  transferEncoding: string | undefined
  fault: Fault
}

export interface FaultProxy {
  endpoint: string
  requests: SeenRequest[]
  /** Decides the fault of each request; `index` counts from 0 over the proxy's lifetime. */
  plan: (req: IncomingMessage, index: number) => Fault
  close(): Promise<void>
}

/** True for the JSON-API upload of an object whose name ends with `suffix` (simple/media uploads). */
export function isUploadOf(req: IncomingMessage, suffix: string): boolean {
  const url = new URL(req.url ?? '/', 'http://x')
  return req.method === 'POST' && url.pathname.includes('/upload/') && (url.searchParams.get('name') ?? '').endsWith(suffix)
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target)
  const proxy: FaultProxy = { endpoint: '', requests: [], plan: () => 'pass', close: async () => {} }
  const server = createServer((req, res) => {
    const index = proxy.requests.length
    const fault = proxy.plan(req, index)
    proxy.requests.push({
      index,
      method: req.method ?? '',
      url: req.url ?? '',
      contentLength: req.headers['content-length'],
      transferEncoding: req.headers['transfer-encoding'],
      fault,
    })
    if (fault === 'drop') return req.socket.destroy()
    if (fault === 'stall') return // held until close(): the client must give up on its own
    if (fault === 'fail500') {
      req.resume()
      req.once('end', () => {
        res.writeHead(500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { code: 500, message: 'injected fault' } }))
      })
      return
    }
    const out = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        if (fault === 'landedDrop') {
          up.resume()
          up.once('end', () => req.socket.destroy())
          return
        }
        res.writeHead(up.statusCode ?? 502, up.headers)
        if (fault === 'pass') return up.pipe(res)
        const chunks: Buffer[] = []
        up.on('data', (c: Buffer) => chunks.push(c))
        up.once('end', () => {
          const body = Buffer.concat(chunks)
          res.write(body.subarray(0, body.byteLength >> 1))
          if (fault === 'cutBody') res.socket?.destroy()
        })
      },
    )
    out.once('error', () => res.destroy())
    req.pipe(out)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  proxy.close = async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  return proxy
}

/** Rejects if `p` has not settled within `ms`: for tests whose property is "no hang". */
export async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, hung])
  } finally {
    clearTimeout(timer)
  }
}
