/**
 * A resume's first read in one round trip: the reader asks a pending build's origin for the header and
 * names the offset it reads first; the origin sends the frame holding it with the header. In-process
 * nodes over real TCP on 127.0.0.1, a file:// bucket. Every byte read is compared with the source; a
 * frame that comes with a header is verified like any other, and a bad one is refetched.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { getJson, pause, readRange, waitFor } from '../../bench/lib/procs.ts'
import type { SnapswarmNode } from '../../src/node/daemon.ts'
import { LocalBuildProvider } from '../../src/origin/provider.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
const SIZE = 12 * MiB
let env: TestNodes
let origin: SnapswarmNode
const gen = new VmDataGenerator(17, 0)

before(async () => {
  // The upload crawls: every build stays pending for the whole test. Hedging off: one source at a time.
  env = await testNodes({ prefix: 'first-frame', config: { peers: { announceIntervalMs: 200, announceTtlMs: 3000, hedgeAfterMs: 60_000 } } })
  origin = await env.startTestNode('origin', { config: { node: { uploadRateBytesPerSec: 16 * 1024 } } })
})
after(() => env.close())

async function pendingBuild(): Promise<{ id: string; data: Buffer }> {
  const id = randomUUID()
  const data = gen.next(SIZE)
  const src = join(env.dir, `${id}.raw`)
  await writeFile(src, data)
  const res = await pause(origin.apiUrl, id, { parent: null, useCase: 'pause', files: { memfile: src } })
  assert.equal(res.status, 202, JSON.stringify(res.body))
  await waitFor('the build pending on the origin', async () => (await getJson(`${origin.apiUrl}/v1/builds/${id}`)).body.state === 'pending')
  return { id, data }
}

async function reader(name: string, id: string): Promise<SnapswarmNode> {
  const node = await env.startTestNode(name, { config: { node: { bootstrap: [origin.addrs()[0]] } } })
  await waitFor(`${name} to see the build announced`, async () => node.peer.directory.peersFor(id).length > 0)
  return node
}

async function metric(node: SnapswarmNode, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${node.apiUrl}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels))
  return line ? Number(line.split(' ').pop()) : 0
}

test('the first read of a pending build gets its frame with the header: no frames request, every byte exact', async () => {
  const { id, data } = await pendingBuild()
  const b = await reader('b', id)
  const framesServed = await metric(origin, 'snapswarm_peer_served_total', 'protocol="frames"')
  const at = 5 * MiB + 12_288 // inside a frame other than the first
  const r = await readRange(b.apiUrl, id, 'memfile', at, at + 4095)
  assert.equal(r.status, 206, r.text)
  assert.ok(r.bytes.equals(data.subarray(at, at + 4096)), 'the first read differs from the source')
  assert.equal(await metric(b, 'snapswarm_frames_with_header_total', 'outcome="taken"'), 1)
  assert.ok((await metric(origin, 'snapswarm_peer_served_bytes_total', 'protocol="header"')) > 0, 'the origin sent a frame with the header')
  assert.equal(await metric(origin, 'snapswarm_peer_served_total', 'protocol="frames"'), framesServed, 'the first read needed no frames request')
  // The rest of the file reads as usual, byte for byte.
  const all = await readRange(b.apiUrl, id, 'memfile', 0, SIZE - 1)
  assert.ok(all.bytes.equals(data), 'the whole file differs from the source')
})

test('a corrupt frame sent with a header is refused by verification and fetched again: the read is exact', async () => {
  const { id, data } = await pendingBuild()
  const getHeader = LocalBuildProvider.prototype.getHeader
  // The origin flips a byte of the frame it sends with a header (only: its frames requests stay good).
  LocalBuildProvider.prototype.getHeader = async function (this: LocalBuildProvider, ...args: Parameters<typeof getHeader>) {
    const ans = await getHeader.apply(this, args)
    if (ans.status !== 'OK' || !ans.frame) return ans
    const bytes = Uint8Array.from(ans.frame.bytes)
    bytes[bytes.byteLength >> 1] ^= 0x5a
    return { ...ans, frame: { ...ans.frame, bytes } }
  }
  try {
    const c = await reader('c', id)
    const r = await readRange(c.apiUrl, id, 'memfile', 0, 4095)
    assert.equal(r.status, 206, r.text)
    assert.ok(r.bytes.equals(data.subarray(0, 4096)), 'the first read differs from the source')
    assert.equal(await metric(c, 'snapswarm_frames_with_header_total', 'outcome="taken"'), 1)
    assert.ok((await metric(c, 'snapswarm_frame_verify_failures_total', 'source="peer"')) >= 1, 'the corrupt frame was caught by verification')
  } finally {
    LocalBuildProvider.prototype.getHeader = getHeader
  }
})

test('a suffix range (start unknown before the size) reads as before, without a frame with the header', async () => {
  const { id, data } = await pendingBuild()
  const d = await reader('d', id)
  const res = await fetch(`${d.apiUrl}/v1/builds/${id}/memfile`, { headers: { range: 'bytes=-4096' } })
  assert.equal(res.status, 206)
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(data.subarray(SIZE - 4096)))
  assert.equal(await metric(d, 'snapswarm_frames_with_header_total', 'outcome="taken"'), 0)
})
