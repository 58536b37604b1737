/** Raw HTTP clients for the node's API tests: what the socket really did, not what a fetch wrapper says. */
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'

export interface RawAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
  /** 'end': the body ended cleanly (all of Content-Length); 'error': the connection broke first. */
  outcome: 'end' | 'error'
  error?: Error
}

/** GET `url` (with `range`), collecting the body and how it ended. */
export function rawGet(url: string, range?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: range ? { range } : {} }, (res) => {
      const chunks: Buffer[] = []
      let settled = false
      const settle = (outcome: 'end' | 'error', error?: Error): void => {
        if (settled) return
        settled = true
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), outcome, error })
      }
      res.on('data', (d: Buffer) => chunks.push(d))
      res.on('end', () => settle(res.complete ? 'end' : 'error'))
      res.on('error', (err) => settle('error', err))
      res.on('aborted', () => settle('error', new Error('aborted')))
      res.on('close', () => settle(res.complete ? 'end' : 'error', new Error('closed before the end')))
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * A client that sends a request and never reads the answer: the socket is paused before a byte
 * arrives, so what the node sends piles up in the kernel and then in the node.
 */
export function stalledGet(url: string, range: string): Promise<Socket> {
  const u = new URL(url)
  return new Promise((resolve, reject) => {
    const sock = connect({ host: u.hostname, port: Number(u.port) }, () => {
      sock.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nRange: ${range}\r\n\r\n`)
      resolve(sock)
    })
    sock.pause()
    sock.on('error', () => {}) // cut by the node: expected
    sock.once('error', reject)
  })
}
