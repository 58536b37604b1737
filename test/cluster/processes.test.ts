/**
 * The cluster with real daemon processes over real TCP on 127.0.0.1 (file:// storage):
 * a pending build held only by its origin is read byte-exactly on another node and switched over to
 * storage when its upload completes; a node with the wrong cluster key is refused; a dead origin gives
 * a clear error before its upload finished and uninterrupted reads from storage after; a peer serving
 * corrupted frames is detected and its frames never used; a node started with --api-token-file
 * answers its API only with the token, and `snapswarm pause --api-token-file` pauses on it.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeClusterKey } from '../../src/p2p/admission.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { runCli } from '../../bench/lib/cli.ts'
import { type NodeProc, getJson, pause, readRange, waitFor } from '../../bench/lib/procs.ts'
import { CLUSTER_TIMINGS, type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

let env: TestNodes
let dir: string
let bucket: string
let reader: NodeProc
const nodes: NodeProc[] = []

async function origin(extra: string[] = []): Promise<NodeProc> {
  const n = await env.startTestNode(`node-${nodes.length}`, { process: true, args: extra })
  nodes.push(n)
  return n
}

async function connectReader(to: NodeProc): Promise<void> {
  // The reader bootstraps to the first origin; later origins dial the reader.
  await waitFor(`${to.peerId.slice(-6)} connected to the reader`, async () => {
    const peers = await getJson(`${reader.api}/v1/peers`)
    return (peers.body.connected as string[]).includes(to.peerId)
  })
}

async function memfile(size: number, seed: number): Promise<{ path: string; data: Buffer }> {
  const data = new VmDataGenerator(seed).next(size)
  const path = join(dir, `memfile-${seed}`)
  await writeFile(path, data)
  return { path, data }
}

before(async () => {
  env = await testNodes({ prefix: 'cluster', clusterKey: true, config: CLUSTER_TIMINGS })
  dir = env.dir
  bucket = env.bucket
  reader = await env.startTestNode('reader', { process: true })
})

after(async () => {
  await env?.close()
})

test('a pending build held only by its origin is read byte-exactly on another node, then switched over to storage', async () => {
  const a = await origin(['--upload-rate', '200000', '--pending-codec', 'lz4', '--bootstrap', reader.addrs[0]])
  await connectReader(a)
  const { path, data } = await memfile(8 * MiB, 21)
  const id = randomUUID()
  assert.equal((await pause(a.api, id, { files: { memfile: path } })).status, 202)
  await waitFor('the build to be announced pending', async () => (await getJson(`${reader.api}/v1/builds/${id}`)).body.state === 'pending')

  const r = await readRange(reader.api, id, 'memfile', 0, data.byteLength - 1)
  assert.equal(r.status, 206, r.text)
  assert.equal(sha(r.bytes), sha(data))
  assert.ok(!existsSync(join(bucket, id, 'memfile.header')), 'the read finished while the build was not in storage')

  await waitFor('the upload to complete and the reader to learn it', async () => (await getJson(`${reader.api}/v1/builds/${id}`)).body.state === 'uploaded', 60_000)
  await waitFor('the reader to switch over', async () => reader.stderr().includes('switched to the final header from storage'), 10_000)
  const again = await readRange(reader.api, id, 'memfile', 3 * MiB + 17, 7 * MiB)
  assert.equal(again.status, 206, again.text)
  assert.ok(again.bytes.equals(data.subarray(3 * MiB + 17, 7 * MiB + 1)))
  // The switch signal is delivered once per file: later reads (cached or cold) do not switch again.
  for (const [s, e] of [[0, 4095], [5 * MiB, 6 * MiB], [8 * MiB - 10, 8 * MiB - 1]]) {
    const r2 = await readRange(reader.api, id, 'memfile', s, e)
    assert.ok(r2.status === 206 && r2.bytes.equals(data.subarray(s, e + 1)))
  }
  const metrics = await (await fetch(`${reader.api}/metrics`)).text()
  assert.match(metrics, /snapswarm_header_switchovers_total 1\b/)
})

test('a node with the wrong cluster key is refused; one with the right key connects', async () => {
  const otherKey = join(dir, 'other.key')
  await writeClusterKey(otherKey)
  // Debug logs show each bootstrap dial and its fate (the later --log-level wins).
  const stranger = await env.startTestNode('stranger', { process: true, args: ['--cluster-key', otherKey, '--bootstrap', reader.addrs[0], '--log-level', 'debug'] })
  nodes.push(stranger)
  const friend = await origin(['--bootstrap', reader.addrs[0]])
  await connectReader(friend)
  // Not a wait that hopes: the stranger has dialled the reader and been refused at least twice.
  const refusals = () => stranger.stderr().split('\n').filter((l) => l.includes('bootstrap dial failed')).length
  await waitFor('two refused bootstrap dials from the stranger', async () => refusals() >= 2, 60_000)
  assert.ok(!stranger.stderr().includes('bootstrap peer connected'), 'no dial of the stranger ever succeeded')
  const peers = (await getJson(`${reader.api}/v1/peers`)).body.connected as string[]
  assert.ok(peers.includes(friend.peerId), 'the friend is connected to the reader')
  assert.ok(!peers.includes(stranger.peerId), 'the stranger is not connected to the reader')
  assert.deepEqual((await getJson(`${stranger.api}/v1/peers`)).body.connected, [])
  await stranger.stop()
})

test('the origin dies before its upload finished: readers get a clear error within a bounded time', async () => {
  const a = await origin(['--upload-rate', '20000', '--bootstrap', reader.addrs[0]])
  await connectReader(a)
  const { path, data } = await memfile(8 * MiB, 22)
  const id = randomUUID()
  assert.equal((await pause(a.api, id, { files: { memfile: path } })).status, 202)
  await waitFor('pending', async () => (await getJson(`${reader.api}/v1/builds/${id}`)).body.state === 'pending')
  const first = await readRange(reader.api, id, 'memfile', 0, 2 * MiB - 1)
  assert.equal(first.status, 206, first.text)
  assert.ok(first.bytes.equals(data.subarray(0, 2 * MiB)))
  await a.kill()
  // Bounded: a hang would run into this deadline, far above the node's own request timeouts.
  const res = await fetch(`${reader.api}/v1/builds/${id}/memfile`, { headers: { range: `bytes=${6 * MiB}-${7 * MiB}` }, signal: AbortSignal.timeout(120_000) })
  const text = await res.text()
  assert.ok(res.status >= 400, `expected an error status, got ${res.status}`)
  assert.match(text, /ERR_BUILD_UNAVAILABLE|ERR_UPLOAD_FAILED/)
  // Cached bytes stay readable and correct.
  const cached = await readRange(reader.api, id, 'memfile', 4096, 8191)
  assert.ok(cached.status === 206 && cached.bytes.equals(data.subarray(4096, 8192)))
})

test('the origin dies mid-read after its upload: the read completes from storage, byte-exact', async () => {
  const a = await origin(['--bootstrap', reader.addrs[0]])
  await connectReader(a)
  const { path, data } = await memfile(48 * MiB, 23)
  const id = randomUUID()
  assert.equal((await pause(a.api, id, { files: { memfile: path } })).status, 202)
  await waitFor('uploaded', async () => (await getJson(`${reader.api}/v1/builds/${id}`)).body.state === 'uploaded', 60_000)
  await waitFor('the reader to see the origin serving it', async () => {
    const peers = (await getJson(`${reader.api}/v1/builds/${id}`)).body.peers as { peer: string }[]
    return peers.some((p) => p.peer === a.peerId)
  })
  const before = await fetchedBytes(reader.api)
  const res = await fetch(`${reader.api}/v1/builds/${id}/memfile`, { headers: { range: `bytes=0-${data.byteLength - 1}` } })
  assert.equal(res.status, 206)
  const chunks: Buffer[] = []
  let got = 0
  let atKill: { got: number; peer: number; storage: number } | undefined
  for await (const chunk of res.body!) {
    chunks.push(Buffer.from(chunk))
    got += chunk.byteLength
    if (!atKill) {
      // The read has begun on frames the origin served: kill it now, mid-answer.
      const now = await fetchedBytes(reader.api)
      atKill = { got, peer: now.peer - before.peer, storage: now.storage - before.storage }
      await a.kill()
    }
  }
  assert.ok(atKill, 'the answer had a body')
  assert.equal(a.proc.signalCode, 'SIGKILL')
  assert.ok(atKill.got < data.byteLength, `the origin died mid-answer (after ${atKill.got} of ${data.byteLength} bytes)`)
  assert.ok(atKill.peer > 0, `before the kill the read used frames from the origin: ${JSON.stringify(atKill)}`)
  const after = await fetchedBytes(reader.api)
  assert.ok(after.storage - before.storage > 0, 'after the kill the rest came from storage')
  assert.equal(sha(Buffer.concat(chunks)), sha(data))
})

/** Stored bytes the reader fetched from peers and from storage so far (its metrics). */
async function fetchedBytes(api: string): Promise<{ peer: number; storage: number }> {
  const text = await (await fetch(`${api}/metrics`)).text()
  const of = (source: string) => Number(new RegExp(`^snapswarm_frame_bytes_fetched_total\\{source="${source}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
  return { peer: of('peer'), storage: of('storage') }
}

test('a peer serving corrupted frames is detected; its frames are never used', async () => {
  const a = await origin(['--bootstrap', reader.addrs[0]])
  await connectReader(a)
  const { path, data } = await memfile(8 * MiB, 24)
  const id = randomUUID()
  assert.equal((await pause(a.api, id, { files: { memfile: path } })).status, 202)
  await waitFor('uploaded', async () => (await getJson(`${reader.api}/v1/builds/${id}`)).body.state === 'uploaded', 60_000)
  await waitFor('announced', async () => ((await getJson(`${reader.api}/v1/builds/${id}`)).body.peers as unknown[]).length > 0)
  // Corrupt the origin's local copy (what it serves to peers), not the stored object.
  const local = join(dir, `node-${nodes.indexOf(a)}`, 'builds', id, 'memfile.zstd')
  const bytes = await readFile(local)
  for (let i = 1000; i < bytes.byteLength; i += 65_536) bytes[i] ^= 0x5a
  await writeFile(local, bytes)
  const before = await verifyFailures()
  const r = await readRange(reader.api, id, 'memfile', 0, data.byteLength - 1)
  assert.equal(r.status, 206, r.text)
  assert.equal(sha(r.bytes), sha(data))
  assert.ok((await verifyFailures()) > before, 'verification failures from the peer were counted')
})

test('a node started with --api-token-file: probes open, the API needs the token, snapswarm pause --api-token-file works', async () => {
  const token = randomBytes(33).toString('base64')
  const tokenFile = join(dir, 'api.token')
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 })
  const a = await origin(['--api-token-file', tokenFile, '--bootstrap', reader.addrs[0]])
  await connectReader(a)
  assert.ok(!a.stderr().includes(token), 'the token is never logged')
  assert.equal((await fetch(`${a.api}/healthz`)).status, 200)
  assert.equal((await fetch(`${a.api}/readyz`)).status, 200)
  for (const path of ['/metrics', '/v1/peers']) {
    const res = await fetch(`${a.api}${path}`)
    assert.equal(res.status, 401, path)
    assert.equal(res.headers.get('www-authenticate'), 'Bearer')
    assert.equal(((await res.json()) as { error: string }).error, 'ERR_UNAUTHORIZED')
    const wrong = await fetch(`${a.api}${path}`, { headers: { authorization: `Bearer ${token.slice(1)}x` } })
    assert.equal(wrong.status, 401, path)
    await wrong.arrayBuffer()
    const right = await fetch(`${a.api}${path}`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(right.status, 200, path)
    await right.arrayBuffer()
  }

  const { path, data } = await memfile(4 * MiB, 25)
  const id = randomUUID()
  const unauthorized = await pause(a.api, id, { files: { memfile: path } })
  assert.equal(unauthorized.status, 401)
  const cli = await runCli(['pause', '--api', a.api, '--api-token-file', tokenFile, '--build-id', id, '--memfile', path, '--wait'], { env: { SNAPSWARM_API_TOKEN: '' } })
  assert.equal(cli.code, 0, cli.stderr)
  assert.equal(JSON.parse(cli.stdout.toString().trim().split('\n').at(-1)!).state, 'uploaded')
  assert.ok(!cli.stderr.includes(token) && !a.stderr().includes(token), 'the token is never logged')
  // The origin's own read needs the token; the reader (loopback, no token) reads it from the cluster.
  const own = await fetch(`${a.api}/v1/builds/${id}/memfile`, { headers: { range: 'bytes=0-4095' } })
  assert.equal(own.status, 401)
  await own.arrayBuffer()
  const withToken = await fetch(`${a.api}/v1/builds/${id}/memfile`, { headers: { range: `bytes=0-${data.byteLength - 1}`, authorization: `Bearer ${token}` } })
  assert.equal(withToken.status, 206)
  assert.equal(sha(Buffer.from(await withToken.arrayBuffer())), sha(data))
  await waitFor('uploaded on the reader', async () => (await getJson(`${reader.api}/v1/builds/${id}`)).body.state === 'uploaded', 30_000)
  const r = await readRange(reader.api, id, 'memfile', MiB + 3, 3 * MiB)
  assert.equal(r.status, 206, r.text)
  assert.ok(r.bytes.equals(data.subarray(MiB + 3, 3 * MiB + 1)))
})

async function verifyFailures(): Promise<number> {
  const text = await (await fetch(`${reader.api}/metrics`)).text()
  const m = /snapswarm_frame_verify_failures_total\{source="peer"\} (\d+)/.exec(text)
  return m ? Number(m[1]) : 0
}
