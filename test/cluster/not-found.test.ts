/**
 * A node answers "not found" at once when every source it knows says no, and keeps waiting only while
 * the build may still appear. Real `snapswarm node` processes on 127.0.0.1, a real fs bucket. The
 * nodes poll storage for a final header for an hour (switchover.finalHeaderPollMs): a read that
 * waited instead of answering would hit the test's timeout, and the peer's served-request counter
 * says how many times it was asked (one lookup, no retry loop).
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { writeVmData } from '../../src/util/vmdata.ts'
import { getJson, type NodeProc, pause, readRange, waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
const HOUR_MS = 3_600_000
let env: TestNodes
let dir: string
let a: NodeProc
let b: NodeProc

before(async () => {
  env = await testNodes({ prefix: 'not-found', config: { switchover: { finalHeaderPollMs: HOUR_MS } } })
  dir = env.dir
  a = await env.startTestNode('a', { process: true })
  b = await env.startTestNode('b', { process: true, args: ['--bootstrap', a.addrs[0]] })
  await waitFor('B connected to A', async () => ((await getJson(`${b.api}/v1/peers`)).body.connected as string[]).includes(a.peerId))
})

after(async () => {
  await env?.close()
})

/** How many header requests `node` answered NOT_AVAILABLE so far (its Prometheus counter). */
async function headerNotAvailable(node: NodeProc): Promise<number> {
  const text = await (await fetch(`${node.api}/metrics`)).text()
  const m = /^snapswarm_peer_served_total\{protocol="header",status="NOT_AVAILABLE"\} (\d+)/m.exec(text)
  return m ? Number(m[1]) : 0
}

async function uploaded(node: NodeProc, id: string): Promise<void> {
  await waitFor(`build ${id} uploaded`, async () => (await getJson(`${node.api}/v1/builds/${id}`)).body.state === 'uploaded')
}

test('regression: an unknown build took ~10 s to 404; now 404 ERR_NOT_FOUND after one question to each peer', { timeout: 120_000 }, async () => {
  const before = await headerNotAvailable(a)
  const id = randomUUID()
  const r = await readRange(b.api, id, 'memfile', 0, 4095)
  assert.equal(r.status, 404, r.text)
  assert.equal(JSON.parse(r.text).error, 'ERR_NOT_FOUND', r.text)
  assert.match(JSON.parse(r.text).message, new RegExp(`build ${id} is not in storage and no peer has it`))
  assert.equal(await headerNotAvailable(a), before + 1, 'A was asked once: no retry loop')
  // The node's own API too: the origin-less build is unknown to A as well (A has no peers to ask but B).
  const onA = await readRange(a.api, id, 'rootfs', 0, 4095)
  assert.equal(onA.status, 404, onA.text)
  assert.equal(JSON.parse(onA.text).error, 'ERR_NOT_FOUND')
})

test('regression: a file kind the build does not have took 30 s and blamed storage; now 404 ERR_NOT_FOUND at once, on the origin and on a peer', { timeout: 120_000 }, async () => {
  const id = randomUUID()
  const memfile = join(dir, `${id}.mem`)
  await writeVmData(memfile, 4 * MiB, 5)
  const p = await pause(a.api, id, { files: { memfile } })
  assert.equal(p.status, 202, JSON.stringify(p.body))
  await uploaded(a, id)
  for (const node of [b, a]) {
    // B asks A, which says USE_STORAGE; storage holds the memfile header only: without the fix the
    // reader would poll storage for the rootfs header for an hour.
    const r = await readRange(node.api, id, 'rootfs', 0, 4095)
    assert.equal(r.status, 404, r.text)
    const body = JSON.parse(r.text)
    assert.equal(body.error, 'ERR_NOT_FOUND', r.text)
    assert.match(body.message, new RegExp(`build ${id} has no rootfs`))
  }
  const source = await readFile(memfile)
  const ok = await readRange(b.api, id, 'memfile', MiB, 2 * MiB - 1)
  assert.equal(ok.status, 206, ok.text)
  assert.ok(ok.bytes.equals(source.subarray(MiB, 2 * MiB)), 'the kind it has reads byte-exact')
})

test('a read right after a pause on another node still waits for the build while its origin frames it (BUSY), then reads it byte-exact', { timeout: 120_000 }, async () => {
  const id = randomUUID()
  const memfile = join(dir, `${id}.mem`)
  await writeVmData(memfile, 48 * MiB, 9)
  const p = await pause(a.api, id, { files: { memfile } })
  assert.equal(p.status, 202, JSON.stringify(p.body))
  const r = await readRange(b.api, id, 'memfile', 40 * MiB, 41 * MiB - 1)
  assert.equal(r.status, 206, r.text)
  const source = await readFile(memfile)
  assert.ok(r.bytes.equals(source.subarray(40 * MiB, 41 * MiB)))
  await uploaded(a, id)
})
