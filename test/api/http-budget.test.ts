/**
 * Memory of a real `snapswarm node` process under clients that open big reads and never read them
 * (file:// storage written by `snapswarm push`, raw TCP clients on 127.0.0.1). Range answers lease
 * their buffers from one node-wide budget (http.responseBufferBytes); reads beyond it wait or get
 * 503 + Retry-After; a client that takes nothing for http.sendTimeoutMs is cut and gives its buffers
 * back; a client that goes away gives them back at once.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type NodeProc, waitFor } from '../../bench/lib/procs.ts'
import { runCli } from '../../bench/lib/cli.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'
import { type RawAnswer, rawGet, stalledGet } from './http-helpers.ts'

const MiB = 1024 * 1024
const BUDGET = 32 * MiB
/**
 * What the node may grow by beyond its buffers while 200 connections hang: their sockets and
 * request objects, the 503 answers, logging, heap growth. Old code: every stalled client pinned
 * three 8 MiB buffers of its own (about 4.8 GB for 200).
 */
const SLACK = 96 * MiB
const CLIENTS = 200
let env: TestNodes
let dir: string
let storage: string
let id: string
let data: Buffer

before(async () => {
  env = await testNodes({ prefix: 'http-budget' })
  dir = env.dir
  storage = env.storage
  // 64 MiB is enough to show the bug: the code before the budget peaked at 1876 MiB RSS with it.
  data = new VmDataGenerator(77).next(64 * MiB)
  await writeFile(join(dir, 'mem'), data)
  id = randomUUID()
  const pushed = await runCli(['push', '--storage', storage, '--build-id', id, '--memfile', join(dir, 'mem'), '--codec', 'lz4'])
  assert.equal(pushed.code, 0, pushed.stderr)
})

after(async () => {
  await env?.close()
})

function node(name: string, http: Record<string, number>): Promise<NodeProc> {
  return env.startTestNode(name, { process: true, config: { http } })
}

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  assert.ok(m, 'VmRSS in /proc/<pid>/status')
  return Number(m[1]) * 1024
}

/** Sum of a metric's samples (all label sets) in a Prometheus text answer. */
async function metric(api: string, name: string, labels = ''): Promise<number> {
  const res = await fetch(`${api}/metrics`)
  assert.equal(res.status, 200)
  let sum = 0
  for (const line of (await res.text()).split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{${labels}`)) sum += Number(line.split(' ').at(-1))
  }
  return sum
}

const whole = () => `bytes=0-${data.byteLength - 1}`

/** A normal client: the whole file, retried after Retry-After while the node says 503 (bounded). */
async function readWhole(api: string): Promise<RawAnswer> {
  return waitFor('a whole read that is not refused', async () => {
    const got = await rawGet(`${api}/v1/builds/${id}/memfile`, whole())
    if (got.status !== 503) return got
    assert.ok(Number(got.headers['retry-after']) >= 1, '503 comes with Retry-After')
    assert.equal((JSON.parse(got.body.toString()) as { error: string }).error, 'ERR_BUSY')
    await new Promise((r) => setTimeout(r, 200))
  }, 60_000)
}

function assertExact(got: RawAnswer): void {
  assert.equal(got.status, 206)
  assert.equal(got.outcome, 'end')
  assert.equal(got.body.byteLength, data.byteLength)
  assert.ok(got.body.equals(data), 'every byte as the source')
}

test('regression: 200 clients that open a 200 MiB read and do not read (item 10)', async (t) => {
  const n = await node('stall', { responseBufferBytes: BUDGET, maxWaitingReads: 8, responseWaitMs: 60_000, sendTimeoutMs: 3_000 })
  const pid = n.proc.pid as number
  // Warm: the first read fills the chunk cache and the decoders, so the baseline is the node's steady state.
  assertExact(await readWhole(n.api))
  const baseline = Math.max(rss(pid), rss(pid))
  const bound = baseline + BUDGET + SLACK
  const clients: Socket[] = []
  let peak = 0
  const sampler = setInterval(() => {
    peak = Math.max(peak, rss(pid))
  }, 25)
  try {
    for (let i = 0; i < CLIENTS; i++) clients.push(await stalledGet(`${n.api}/v1/builds/${id}/memfile`, whole()))
    // Every stalled client is refused (503) or, once it held its share of the budget, cut.
    await waitFor('every stalled client refused or cut', async () => {
      peak = Math.max(peak, rss(pid))
      const refused = await metric(n.api, 'snapswarm_http_reads_refused_total')
      const cut = await metric(n.api, 'snapswarm_http_responses_cut_total', 'reason="send_timeout"')
      return refused + cut >= CLIENTS
    }, 120_000)
  } finally {
    clearInterval(sampler)
    for (const c of clients) c.destroy()
  }
  const mb = (b: number) => `${(b / MiB).toFixed(0)} MiB`
  t.diagnostic(`RSS baseline ${mb(baseline)}, peak ${mb(peak)} with ${CLIENTS} stalled clients, bound ${mb(bound)}`)
  assert.ok(peak <= bound, `RSS peaked at ${mb(peak)} with ${CLIENTS} stalled clients; bound ${mb(bound)} = baseline ${mb(baseline)} + budget ${mb(BUDGET)} + ${mb(SLACK)}`)
  assert.ok((await metric(n.api, 'snapswarm_http_reads_refused_total')) > 0, 'reads beyond the budget and the queue were refused')
  assert.ok((await metric(n.api, 'snapswarm_http_responses_cut_total', 'reason="send_timeout"')) > 0, 'stalled clients were cut')
  await waitFor('the budget to be free again', async () => (await metric(n.api, 'snapswarm_http_response_bytes')) === 0)
  // The node still serves: a normal client gets every byte, metrics and health answer.
  assertExact(await readWhole(n.api))
  assert.equal((await fetch(`${n.api}/healthz`)).status, 200)
  assert.equal(await metric(n.api, 'snapswarm_http_response_bytes_limit'), BUDGET)
})

test('clients that go away give back their buffers and their place in the queue at once; one more than the queue holds gets 503 + Retry-After', async () => {
  // Long send timeout: whatever is given back here is given back because the clients left, not because they were cut.
  const n = await node('vanish', { responseBufferBytes: 16 * MiB, maxWaitingReads: 6, responseWaitMs: 60_000, sendTimeoutMs: 600_000 })
  const url = `${n.api}/v1/builds/${id}/memfile`
  const clients: Socket[] = []
  try {
    for (let i = 0; i < 8; i++) clients.push(await stalledGet(url, whole()))
    // (At least 6: a read already streaming may queue for its next chunk beyond the limit; it cannot be refused.)
    await waitFor('the budget full and the queue full', async () =>
      (await metric(n.api, 'snapswarm_http_response_bytes')) === 16 * MiB && (await metric(n.api, 'snapswarm_http_reads_waiting')) >= 6,
    )
    // One or two of the stalled clients hold the budget (the kernel may have taken a first chunk whole): a third may have been refused already.
    const before = await metric(n.api, 'snapswarm_http_reads_refused_total', 'reason="queue_full"')
    const refused = await rawGet(url, whole())
    assert.equal(refused.status, 503, 'the queue is full: refused at once')
    assert.ok(Number(refused.headers['retry-after']) >= 1)
    assert.equal((JSON.parse(refused.body.toString()) as { error: string }).error, 'ERR_BUSY')
    assert.equal(await metric(n.api, 'snapswarm_http_reads_refused_total', 'reason="queue_full"'), before + 1)
  } finally {
    for (const c of clients) c.destroy()
  }
  await waitFor('every buffer and queue place given back', async () =>
    (await metric(n.api, 'snapswarm_http_response_bytes')) === 0 && (await metric(n.api, 'snapswarm_http_reads_waiting')) === 0,
  )
  assert.equal(await metric(n.api, 'snapswarm_http_responses_cut_total'), 0, 'nobody was cut: they left')
  assertExact(await readWhole(n.api))
})

test('a slow but steady reader is never cut, though its answer takes longer than http.sendTimeoutMs', async () => {
  const n = await node('steady', { responseBufferBytes: 16 * MiB, maxWaitingReads: 4, responseWaitMs: 60_000, sendTimeoutMs: 2_000 })
  const [s, e] = [5 * MiB + 3, 11 * MiB + 1]
  let pauses = 0
  const body = await new Promise<Buffer>((resolve, reject) => {
    const req = request(`${n.api}/v1/builds/${id}/memfile`, { headers: { range: `bytes=${s}-${e}` } }, (res) => {
      const chunks: Buffer[] = []
      let sincePause = 0
      res.on('data', (d: Buffer) => {
        chunks.push(d)
        sincePause += d.byteLength
        // About 1.25 MiB/s: six MiB take several send timeouts, yet the client takes bytes all along.
        if (sincePause >= 128 * 1024) {
          sincePause = 0
          pauses++
          res.pause()
          setTimeout(() => res.resume(), 100)
        }
      })
      res.on('end', () => (res.complete ? resolve(Buffer.concat(chunks)) : reject(new Error('cut'))))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
  assert.ok(body.equals(data.subarray(s, e + 1)), 'every byte as the source')
  // The premise, counted rather than timed: the client stood still (timers never fire early) for
  // more than the send timeout in total, so a timeout on the whole answer would have cut it.
  assert.ok(pauses * 100 > 2_000, `the client paused ${pauses} times for 100 ms`)
  assert.equal(await metric(n.api, 'snapswarm_http_responses_cut_total'), 0, `not cut (the client paused ${pauses} times)`)
  await waitFor('its buffers given back', async () => (await metric(n.api, 'snapswarm_http_response_bytes')) === 0)
})
