/**
 * Range reads over the HTTP API of an in-process node (file:// storage, real files, real sockets on
 * 127.0.0.1): answers longer than one 8 MiB read go out through two reused buffers, so every byte of
 * several consecutive reads is compared with the source; a client that goes away mid-answer leaves
 * the node serving.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { SnapswarmNode } from '../../src/node/daemon.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
let env: TestNodes
let dir: string
let node: SnapswarmNode
let id: string
let data: Buffer

before(async () => {
  env = await testNodes({ prefix: 'http-range' })
  dir = env.dir
  node = await env.startTestNode('node')
  data = new VmDataGenerator(21).next(27 * MiB + 12345)
  await writeFile(join(dir, 'mem'), data)
  id = randomUUID()
  const res = await fetch(`${node.apiUrl}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ files: { memfile: join(dir, 'mem') } }) })
  assert.equal(res.status, 202, await res.text())
  await waitFor('the build to be uploaded', async () => {
    const r = await fetch(`${node.apiUrl}/v1/builds/${id}`)
    return r.status === 200 && ((await r.json()) as { state: string }).state === 'uploaded'
  }, 60_000)
})

after(async () => {
  await env?.close()
})

async function range(start: number, end: number): Promise<Buffer> {
  const res = await fetch(`${node.apiUrl}/v1/builds/${id}/memfile`, { headers: { range: `bytes=${start}-${end}` } })
  assert.equal(res.status, 206)
  assert.equal(res.headers.get('content-length'), String(end - start + 1))
  return Buffer.from(await res.arrayBuffer())
}

test('a whole-file answer (4 reads of up to 8 MiB) and unaligned ranges across reads equal the source', async () => {
  assert.ok((await range(0, data.byteLength - 1)).equals(data), 'whole file')
  for (const [s, e] of [
    [1, 17 * MiB + 3],
    [8 * MiB - 1, 24 * MiB + 1],
    [3 * MiB + 777, data.byteLength - 2],
  ]) {
    assert.ok((await range(s, e)).equals(data.subarray(s, e + 1)), `bytes ${s}-${e}`)
  }
})

test('a slow client: buffers are refilled only once the socket took them (at most two 8 MiB reads held; the bytes stay exact)', async () => {
  // What the node holds for this answer, looked at while the client stalls.
  const held: Promise<number>[] = []
  const heldNow = async () => Number(/^snapswarm_http_response_bytes (\d+)$/m.exec(await node.registry.metrics())?.[1] ?? Number.NaN)
  const body = await new Promise<Buffer>((resolve, reject) => {
    const req = request(`${node.apiUrl}/v1/builds/${id}/memfile`, { headers: { range: `bytes=0-${data.byteLength - 1}` } }, (res) => {
      const chunks: Buffer[] = []
      let paused = 0
      res.on('data', (d: Buffer) => {
        chunks.push(d)
        // Stall now and then, long enough for the node's socket and its queued writes to fill up.
        if (chunks.length % 64 === 1 && paused++ < 6) {
          res.pause()
          held.push(heldNow())
          setTimeout(() => res.resume(), 150)
        }
      })
      res.on('end', () => resolve(Buffer.concat(chunks)))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
  assert.equal(body.byteLength, data.byteLength)
  assert.ok(body.equals(data), 'every byte as stored, though the client kept stalling')
  const samples = await Promise.all(held)
  assert.equal(samples.length, 6)
  assert.ok(samples.every((b) => b >= 0 && b <= 2 * 8 * MiB), `bytes held while the client stalled: ${samples}`)
  assert.ok(samples.some((b) => b > 0), `the answer's buffers were seen held: ${samples}`)
})

test('a client that goes away mid-answer: the node notices, frees the answer\'s buffers, keeps serving, and the next answer is exact', { timeout: 120_000 }, async () => {
  for (let i = 0; i < 3; i++) {
    const received = await new Promise<number>((resolve, reject) => {
      let got = 0
      let left = false
      const req = request(`${node.apiUrl}/v1/builds/${id}/memfile`, { headers: { range: `bytes=0-${data.byteLength - 1}` } }, (res) => {
        if (res.statusCode !== 206) reject(new Error(`expected 206, got ${res.statusCode}`))
        res.on('data', (d: Buffer) => {
          got += d.byteLength
          if (got > 9 * MiB && !left) {
            left = true // past the first read: the reused buffers are in play
            req.destroy()
          }
        })
        // Only the client's own leaving may end this answer: a node that ends it first is a failure.
        res.on('end', () => reject(new Error(`the answer ended by itself after ${got} bytes`)))
        res.on('close', () => (left ? resolve(got) : reject(new Error(`the node closed the answer after ${got} bytes`))))
      })
      req.on('error', (err) => (left ? resolve(got) : reject(err)))
      req.end()
    })
    assert.ok(received > 9 * MiB && received < data.byteLength, `left after ${received} of ${data.byteLength} bytes`)
    // The node sees the disconnect and gives back every buffer the answer held.
    await waitFor('the response buffers to be freed', async () => /^snapswarm_http_response_bytes 0$/m.test(await node.registry.metrics()), 30_000)
  }
  assert.ok((await range(5 * MiB, 21 * MiB)).equals(data.subarray(5 * MiB, 21 * MiB + 1)))
})

test('without a token: a non-loopback Host (DNS rebinding) gets 403; a POST that is not application/json gets 415 and pauses nothing', async () => {
  const port = new URL(node.apiUrl).port
  const get = (host: string) =>
    new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/v1/peers', headers: { host } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
        .on('error', reject)
        .end()
    })
  assert.equal(await get(`rebound.example:${port}`), 403)
  assert.equal(await get('10.0.0.1'), 403)
  assert.equal(await get(`localhost:${port}`), 200)
  assert.equal(await get(`127.0.0.1:${port}`), 200)
  assert.equal(await get(`[::1]:${port}`), 200)
  const other = randomUUID()
  // What a page on another origin can send without a CORS preflight: a text/plain body.
  const res = await fetch(`${node.apiUrl}/v1/builds/${other}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ files: { memfile: join(dir, 'mem') } }) })
  assert.equal(res.status, 415)
  assert.equal((await fetch(`${node.apiUrl}/v1/builds/${other}`)).status, 404, 'nothing was paused')
  assert.equal((await fetch(`${node.apiUrl}/healthz`, { headers: {} })).status, 200)
})
