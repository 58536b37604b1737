/**
 * Nodes serve and announce builds whose frames they have cached: in-process nodes over real
 * TCP on 127.0.0.1, file:// buckets. B reads uploaded builds from storage; other nodes then read them
 * from B (announced `cached`), fall back to storage for what B lacks or holds corrupt, and see B's
 * announcement go when its frame store evicts the build.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { SnapswarmNode } from '../../src/node/daemon.ts'
import { openStore } from '../../src/storage/url.ts'
import { uploadBuild } from '../../src/upload/build-upload.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const KiB = 1024
const FRAME = 256 * KiB
const FRAMES = 8
let env: TestNodes
let dir: string
let bucket: string
/** Holds only the headers of the builds: a node using it can find builds but must read frames from peers. */
let headersOnly: string
let b: SnapswarmNode
let c: SnapswarmNode
let d: SnapswarmNode
// No zero pages: zero blocks are left out of the stored data, and these tests count one fetch per frame.
const gen = new VmDataGenerator(21, 0)

const BASE_CONFIG = {
  // Hedging off: each frame goes to one source at a time, so per-source counts are exact. The swarm
  // off: these tests are about `cached` copies as such (test/swarm/ has a reader fetch frames for others).
  peers: { announceIntervalMs: 200, announceTtlMs: 3000, hedgeAfterMs: 60_000, swarm: false },
  cache: { frames: { maxBytes: 64 * 1024 * KiB, announceMax: 16 } },
}

async function start(name: string, storage: string, extra: { bootstrap?: string[]; frameStoreBytes?: number; sharedDir?: string } = {}): Promise<SnapswarmNode> {
  const cache = {
    ...(extra.frameStoreBytes === undefined ? {} : { frames: { maxBytes: extra.frameStoreBytes } }),
    ...(extra.sharedDir === undefined ? {} : { sharedDir: extra.sharedDir }),
  }
  const node = await env.startTestNode(name, { storage: pathToFileURL(storage).href, config: { node: { bootstrap: extra.bootstrap ?? [] }, cache } })
  const ids = (extra.bootstrap ?? []).map((a) => a.split('/p2p/')[1])
  await waitFor(`${name} connected`, async () => ids.every((id) => node.peer.node.connectedPeers().includes(id)))
  return node
}

/** A build of FRAMES zstd frames uploaded to the bucket (its header copied to the headers-only bucket). */
async function upload(): Promise<{ id: string; data: Buffer }> {
  const id = randomUUID()
  const data = gen.next(FRAMES * FRAME)
  const src = join(dir, `${id}.raw`)
  await writeFile(src, data)
  const store = await openStore(pathToFileURL(bucket).href)
  try {
    await uploadBuild({ store, buildId: id, files: { memfile: src }, useCase: 'build', blockSize: { memfile: 4096 }, compression: { default: { codec: 'zstd', frameSize: FRAME } } })
  } finally {
    await store.close()
  }
  await mkdir(join(headersOnly, id), { recursive: true })
  await copyFile(join(bucket, id, 'memfile.header'), join(headersOnly, id, 'memfile.header'))
  return { id, data }
}

/** Read frames one at a time (each read is one frame: one fetch, one source), checking every byte. */
async function readFrames(node: SnapswarmNode, id: string, data: Buffer, frames: readonly number[]): Promise<void> {
  const f = await node.openRead(id, 'memfile')
  try {
    for (const i of frames) {
      const got = Buffer.from(await f.read(i * FRAME, FRAME))
      assert.ok(got.equals(data.subarray(i * FRAME, (i + 1) * FRAME)), `frame ${i} byte-exact`)
    }
  } finally {
    await f.close()
  }
}

async function metric(node: SnapswarmNode, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = node.registry.getSingleMetric(name)
  if (!m) return 0
  const values = (await m.get()).values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
  return values.reduce((sum, v) => sum + v.value, 0)
}

/** Frames B has stored (its store writes are fire-and-forget). */
function storedOnB(n: number): Promise<true> {
  return waitFor(`${n} frame store writes on B`, async () => (await metric(b, 'snapswarm_frame_store_writes_total', { result: 'written' })) >= n || undefined)
}

/** The compressed range an owned frame store entry name stands for (`{codec}-{startC}-{sizeC}-…`). */
function rangeOf(name: string): { startC: number; sizeC: number } {
  const [, startC, sizeC] = name.split('-')
  return { startC: Number.parseInt(startC, 16), sizeC: Number.parseInt(sizeC, 16) }
}

function announcedState(by: SnapswarmNode, at: SnapswarmNode, id: string): string | undefined {
  return at.peer.directory.peersFor(id).find((e) => e.peer === by.peerId)?.state
}

before(async () => {
  env = await testNodes({ prefix: 'cached', config: BASE_CONFIG })
  dir = env.dir
  bucket = env.bucket
  headersOnly = join(dir, 'headers-only')
  await mkdir(bucket, { recursive: true })
  await mkdir(headersOnly, { recursive: true })
  b = await start('b', bucket)
  c = await start('c', headersOnly, { bootstrap: [b.addrs()[0]] })
  d = await start('d', bucket, { bootstrap: [b.addrs()[0]] })
})

after(async () => {
  await env?.close()
})

test('a node that read a build from storage serves it to one that cannot, and announces it cached', async () => {
  const { id, data } = await upload()
  const written = await metric(b, 'snapswarm_frame_store_writes_total', { result: 'written' })
  await readFrames(b, id, data, [...Array(FRAMES).keys()])
  assert.equal(await metric(b, 'snapswarm_read_hits_total', { source: 'storage' }), FRAMES, 'B read every frame from storage')
  await storedOnB(written + FRAMES)

  // (b) announced as cached: in B's own /v1/peers and in the directories of its peers.
  const peers = (await (await fetch(`${b.apiUrl}/v1/peers`)).json()) as { announced: { buildId: string; state: string }[] }
  assert.deepEqual(
    peers.announced.filter((a) => a.buildId === id),
    [{ buildId: id, state: 'cached' }],
  )
  await waitFor('C to see B announce the build cached', async () => announcedState(b, c, id) === 'cached')

  // (a) C's bucket has no data objects: every frame it reads comes from B, byte-exactly.
  await readFrames(c, id, data, [...Array(FRAMES).keys()])
  assert.equal(await metric(c, 'snapswarm_read_hits_total', { source: 'peer' }), FRAMES)
  assert.equal(await metric(c, 'snapswarm_read_hits_total', { source: 'storage' }), 0)
  assert.equal(await metric(b, 'snapswarm_frame_store_served_frames_total'), FRAMES)
  assert.ok((await metric(b, 'snapswarm_frame_store_served_bytes_total')) > 0)

  // A cached copy has no pending header: B never answers a header request for it...
  const header = await c.peer.client.getHeader(b.peerId, id, 'memfile')
  assert.equal(header.status, 'NOT_AVAILABLE')
  // ...and a node that only hears of cached copies does not take them as a pending build.
  const e = await start('e', join(dir, 'empty-bucket'), { bootstrap: [b.addrs()[0]] })
  try {
    await waitFor('E to see B announce the build cached', async () => announcedState(b, e, id) === 'cached')
    const info = (await (await fetch(`${e.apiUrl}/v1/builds/${id}`)).json()) as { state: string; peers: { state: string }[] }
    assert.equal(info.state, 'unknown')
    assert.ok(info.peers.every((p) => p.state === 'cached'))
  } finally {
    await e.stop()
  }
})

test('a partially cached build: frames B lacks are NOT_AVAILABLE there and come from storage', async () => {
  const { id, data } = await upload()
  const written = await metric(b, 'snapswarm_frame_store_writes_total', { result: 'written' })
  const cached = [0, 3, 5]
  await readFrames(b, id, data, cached)
  await storedOnB(written + cached.length)
  await waitFor('D to see B announce the build cached', async () => announcedState(b, d, id) === 'cached')

  const before = {
    served: await metric(b, 'snapswarm_frame_store_served_frames_total'),
    missing: await metric(b, 'snapswarm_frame_store_requests_total', { result: 'missing' }),
    peer: await metric(d, 'snapswarm_read_hits_total', { source: 'peer' }),
    storage: await metric(d, 'snapswarm_read_hits_total', { source: 'storage' }),
  }
  await readFrames(d, id, data, [...Array(FRAMES).keys()])
  assert.equal((await metric(d, 'snapswarm_read_hits_total', { source: 'peer' })) - before.peer, cached.length)
  assert.equal((await metric(d, 'snapswarm_read_hits_total', { source: 'storage' })) - before.storage, FRAMES - cached.length)
  assert.equal((await metric(b, 'snapswarm_frame_store_served_frames_total')) - before.served, cached.length)
  assert.equal((await metric(b, 'snapswarm_frame_store_requests_total', { result: 'missing' })) - before.missing, FRAMES - cached.length)
})

test('a corrupt entry in B’s store is never sent: B drops it, the reader gets that frame from storage', async () => {
  const { id, data } = await upload()
  const written = await metric(b, 'snapswarm_frame_store_writes_total', { result: 'written' })
  await readFrames(b, id, data, [...Array(FRAMES).keys()])
  await storedOnB(written + FRAMES)
  await waitFor('D to see B announce the build cached', async () => announcedState(b, d, id) === 'cached')

  // Names sort by their 16-hex-digit compressed offset: the fourth is frame 3. Rot one byte of it.
  const entries = join(dir, 'b', 'frames', id, 'memfile')
  const names = (await readdir(entries)).sort()
  assert.equal(names.length, FRAMES)
  const victim = join(entries, names[3])
  const bytes = await readFile(victim)
  bytes[bytes.length >> 1] ^= 0x40
  await writeFile(victim, bytes)

  const before = {
    corrupt: await metric(b, 'snapswarm_frame_store_corrupt_total'),
    peer: await metric(d, 'snapswarm_read_hits_total', { source: 'peer' }),
    storage: await metric(d, 'snapswarm_read_hits_total', { source: 'storage' }),
    bad: await metric(d, 'snapswarm_frame_verify_failures_total'),
  }
  await readFrames(d, id, data, [...Array(FRAMES).keys()])
  assert.equal((await metric(d, 'snapswarm_read_hits_total', { source: 'peer' })) - before.peer, FRAMES - 1)
  assert.equal((await metric(d, 'snapswarm_read_hits_total', { source: 'storage' })) - before.storage, 1, 'frame 3 from storage')
  assert.equal((await metric(d, 'snapswarm_frame_verify_failures_total')) - before.bad, 0, 'B never sent the rotten bytes')
  assert.equal((await metric(b, 'snapswarm_frame_store_corrupt_total')) - before.corrupt, 1)
  await assert.rejects(stat(victim), { code: 'ENOENT' }, 'B removed the corrupt entry')

  // B does not keep offering it: asked again for frame 3, NOT_AVAILABLE; the other frames still OK.
  const again = await d.peer.client.getFrames(b.peerId, id, 'memfile', 'zstd', [rangeOf(names[3])])
  assert.equal(again.status, 'NOT_AVAILABLE')
  const others = await d.peer.client.getFrames(b.peerId, id, 'memfile', 'zstd', [rangeOf(names[2]), rangeOf(names[4])])
  assert.equal(others.status, 'OK')
})

test('eviction under the size bound withdraws the announcement; shutdown withdraws the rest', async () => {
  const x = await upload()
  const w = await upload()
  const size = async (id: string) => (await stat(join(bucket, id, 'memfile.zstd'))).size
  // Room for one of the two builds, not both.
  const bound = Math.floor(1.5 * Math.max(await size(x.id), await size(w.id)))
  const f = await start('f', bucket, { bootstrap: [b.addrs()[0]], frameStoreBytes: bound })
  try {
    const written = () => metric(f, 'snapswarm_frame_store_writes_total', { result: 'written' })
    await readFrames(f, x.id, x.data, [...Array(FRAMES).keys()])
    await waitFor('X in F’s store', async () => (await written()) >= FRAMES)
    await waitFor('B to see F announce X cached', async () => announcedState(f, b, x.id) === 'cached')
    assert.equal(await metric(f, 'snapswarm_frame_store_evictions_total'), 0)
    const xFirst = rangeOf((await readdir(join(dir, 'f', 'frames', x.id, 'memfile'))).sort()[0])
    assert.equal((await b.peer.client.getFrames(f.peerId, x.id, 'memfile', 'zstd', [xFirst])).status, 'OK')

    await readFrames(f, w.id, w.data, [...Array(FRAMES).keys()])
    await waitFor('W in F’s store', async () => (await written()) >= 2 * FRAMES)
    await waitFor('B to see F withdraw X', async () => announcedState(f, b, x.id) === undefined)
    await waitFor('B to see F announce W cached', async () => announcedState(f, b, w.id) === 'cached')
    assert.equal(await metric(f, 'snapswarm_frame_store_evictions_total'), 1)
    assert.ok((await metric(f, 'snapswarm_frame_store_bytes')) <= bound)
    await assert.rejects(stat(join(dir, 'f', 'frames', x.id)), { code: 'ENOENT' }, 'X deleted from disk')
    // X is NOT_AVAILABLE at F now; W is served.
    assert.equal((await b.peer.client.getFrames(f.peerId, x.id, 'memfile', 'zstd', [xFirst])).status, 'NOT_AVAILABLE')
    const wFirst = rangeOf((await readdir(join(dir, 'f', 'frames', w.id, 'memfile'))).sort()[0])
    assert.equal((await b.peer.client.getFrames(f.peerId, w.id, 'memfile', 'zstd', [wFirst])).status, 'OK')
  } finally {
    await f.stop()
  }
  await waitFor('B to forget F’s announcements', async () => announcedState(f, b, w.id) === undefined)
})

test('a node on a shared frame directory tracks the entries it wrote there and serves them to a peer, announced cached', async () => {
  const shared = join(dir, 'shared-frames')
  const s = await start('s', bucket, { sharedDir: shared })
  const h = await start('h', headersOnly, { bootstrap: [s.addrs()[0]] })
  try {
    const { id, data } = await upload()
    const all = [...Array(FRAMES).keys()]
    await readFrames(s, id, data, all)
    // The shared cache's own names (`{startC}-{sizeC}.frm`), not the node frame store's.
    await waitFor('every frame in the shared directory', async () => (await readdir(join(shared, id, 'memfile')).catch(() => [])).filter((n) => /^[0-9a-f]{16}-[0-9a-f]+\.frm$/.test(n)).length === FRAMES || undefined)
    await waitFor('H to see S announce the build cached', async () => announcedState(s, h, id) === 'cached')
    await readFrames(h, id, data, all)
    assert.equal(await metric(h, 'snapswarm_read_hits_total', { source: 'peer' }), FRAMES, 'every frame from S (H has no data objects)')
    assert.equal(await metric(s, 'snapswarm_frame_store_served_frames_total'), FRAMES)
  } finally {
    await h.stop()
    await s.stop()
  }
})
