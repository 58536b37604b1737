/**
 * Access traces across a cluster of real `snapswarm node` processes on 127.0.0.1 with a file:// bucket:
 * a trace recorded by one node's resume is stored (uploaded build: in the bucket; pending build: held
 * by its origin) and used by another node's resume, whose demand misses drop; corrupt or truncated
 * traces are ignored with a warning. Every byte read is checked against the source.
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, before, test } from 'node:test'
import { decodeTrace } from '../../src/prefetch/trace.ts'
import { openStore } from '../../src/storage/url.ts'
import { uploadBuild } from '../../src/upload/build-upload.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { getJson, type NodeProc, pause, readRange, waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const KiB = 1024
const MiB = 1024 * KiB
let env: TestNodes
let dir: string
let bucket: string
const gen = new VmDataGenerator(15)

before(async () => {
  env = await testNodes({
    prefix: 'prefetch',
    config: {
      // Hedging off: each frame goes to one source, so the counts below are exact.
      peers: { announceIntervalMs: 200, announceTtlMs: 5000, hedgeAfterMs: 60_000 },
      prefetch: { recordWindowMs: 1500, concurrency: 4 },
      compression: { default: { codec: 'zstd', frameSize: 2 * MiB } },
    },
  })
  dir = env.dir
  bucket = env.bucket
})

after(async () => {
  await env?.close()
})

function node(name: string, opts: { bootstrap?: string[]; uploadRate?: number } = {}): Promise<NodeProc> {
  const args = (opts.bootstrap ?? []).flatMap((b) => ['--bootstrap', b])
  return env.startTestNode(name, { process: true, config: { node: { uploadRateBytesPerSec: opts.uploadRate ?? 0 } }, args })
}

async function metric(n: NodeProc, name: string): Promise<number> {
  const text = await (await fetch(`${n.api}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line ? Number(line.split(' ')[1]) : 0
}

/** Read a few 4 KiB pages scattered in each frame of `frames`, in order, checking every byte. */
async function readWorkingSet(n: NodeProc, id: string, data: Buffer, frame: number, frames: readonly number[]): Promise<void> {
  for (const f of frames) {
    for (const page of [3, 17, 1]) {
      const start = f * frame + page * 4 * KiB
      const r = await readRange(n.api, id, 'memfile', start, start + 4 * KiB - 1)
      assert.equal(r.status, 206, r.text)
      assert.ok(r.bytes.equals(data.subarray(start, start + 4 * KiB)), `bytes of frame ${f} page ${page}`)
    }
  }
}

async function uploaded(frame: number, frames: number): Promise<{ id: string; data: Buffer }> {
  const id = randomUUID()
  // Random bytes: no all-zero page, which the upload would leave out (a read of it fetches nothing).
  const data = randomBytes(frames * frame)
  const src = join(dir, `${id}.raw`)
  await writeFile(src, data)
  const store = await openStore(pathToFileURL(bucket).href)
  try {
    await uploadBuild({ store, buildId: id, files: { memfile: src }, useCase: 'build', blockSize: { memfile: 4096 }, compression: { default: { codec: 'zstd', frameSize: frame } } })
  } finally {
    await store.close()
  }
  return { id, data }
}

const traceFile = (id: string) => join(bucket, id, 'memfile.prefetch')
const exists = (p: string) => stat(p).then(() => true, () => false)

test('uploaded build: the trace node A records is stored in the bucket and node B resumes with almost no demand misses', async () => {
  const frame = 256 * KiB
  const { id, data } = await uploaded(frame, 16)
  const workingSet = [9, 2, 14, 5, 11, 0, 7]
  const a = await node('a-up')
  await readWorkingSet(a, id, data, frame, workingSet)
  assert.equal(await metric(a, 'snapswarm_demand_fetches_total'), workingSet.length)
  await waitFor('the trace in the bucket', () => exists(traceFile(id)))
  const trace = decodeTrace(await readFile(traceFile(id)), { buildId: id, kind: 'memfile' })
  assert.deepEqual(
    trace.entries.map((e) => Math.floor(e.offset / frame)),
    workingSet,
    'the units in the order they were first read',
  )
  assert.deepEqual(
    trace.entries.map((e) => e.offset % frame),
    workingSet.map(() => 3 * 4 * KiB),
    'the first page read of each',
  )

  const b = await node('b-up')
  // The first read opens the file (and starts the prefetch beside it); wait for the rest to arrive.
  await readWorkingSet(b, id, data, frame, workingSet.slice(0, 1))
  await waitFor('B prefetched the rest', async () => (await metric(b, 'snapswarm_prefetch_frames_total')) >= workingSet.length - 1)
  await readWorkingSet(b, id, data, frame, workingSet)
  assert.ok((await metric(b, 'snapswarm_demand_fetches_total')) <= 1, 'at most the first read misses')
  assert.equal(await metric(b, 'snapswarm_prefetch_hits_total'), await metric(b, 'snapswarm_prefetch_frames_total'))
  // B found a trace: it records none, and the stored one is A's, unchanged.
  assert.deepEqual(decodeTrace(await readFile(traceFile(id))), trace)
  await Promise.all([a.stop(), b.stop()])
})

test('pending build: the origin holds the trace of its own resume and serves it to node B, then stores it after the upload', async () => {
  const frame = 2 * MiB
  const data = gen.next(8 * frame)
  const src = join(dir, 'pending.raw')
  await writeFile(src, data)
  const id = randomUUID()
  // Slow enough that the build stays pending while both nodes read it.
  const origin = await node('origin', { uploadRate: 256 * KiB })
  const res = await pause(origin.api, id, { parent: null, useCase: 'pause', files: { memfile: src } })
  assert.equal(res.status, 202, JSON.stringify(res.body))
  const workingSet = [6, 1, 4, 3]
  await waitFor('the build pending on the origin', async () => (await getJson(`${origin.api}/v1/builds/${id}`)).body.state === 'pending')
  await readWorkingSet(origin, id, data, frame, workingSet)
  await waitFor('the origin holding the trace', async () => origin.stderr().includes('holding the access trace'))
  assert.equal(await exists(traceFile(id)), false, 'nothing written under a pending build')

  const b = await node('b-pending', { bootstrap: origin.addrs })
  await readWorkingSet(b, id, data, frame, workingSet.slice(0, 1))
  await waitFor('B prefetched from the origin', async () => (await metric(b, 'snapswarm_prefetch_frames_total')) >= workingSet.length - 1)
  await readWorkingSet(b, id, data, frame, workingSet)
  assert.ok((await metric(b, 'snapswarm_demand_fetches_total')) <= 1, 'at most the first read misses')
  assert.equal((await getJson(`${b.api}/v1/builds/${id}`)).body.state, 'pending', 'B read while the build was pending')

  await waitFor('the trace in the bucket after the upload', () => exists(traceFile(id)), 90_000)
  assert.deepEqual(
    decodeTrace(await readFile(traceFile(id))).entries.map((e) => Math.floor(e.offset / frame)),
    workingSet,
  )
  await Promise.all([origin.stop(), b.stop()])
})

test('a corrupt or truncated trace in the bucket is ignored with a warning; reads stay exact', async () => {
  const frame = 256 * KiB
  const corrupt = await uploaded(frame, 4)
  const truncated = await uploaded(frame, 4)
  // A real trace to damage: recorded by a node reading the first build.
  const a = await node('a-bad')
  await readWorkingSet(a, corrupt.id, corrupt.data, frame, [2, 0])
  await waitFor('the trace in the bucket', () => exists(traceFile(corrupt.id)))
  await a.stop()
  const bytes = await readFile(traceFile(corrupt.id))
  // Bucket objects are create-only: replace them by hand, as rot or a bad writer would.
  const flipped = Buffer.from(bytes)
  flipped[50] ^= 0x01
  await rm(traceFile(corrupt.id))
  await writeFile(traceFile(corrupt.id), flipped)
  await writeFile(traceFile(truncated.id), bytes.subarray(0, bytes.length - 9))

  const b = await node('b-bad')
  await readWorkingSet(b, corrupt.id, corrupt.data, frame, [2, 0, 3])
  await readWorkingSet(b, truncated.id, truncated.data, frame, [1, 2])
  await waitFor('two warnings', async () => b.stderr().split('ignoring a corrupt or truncated access trace').length - 1 >= 2)
  assert.match(b.stderr(), /SHA-256 does not match/)
  assert.equal(await metric(b, 'snapswarm_prefetch_frames_total'), 0)
  assert.equal(await metric(b, 'snapswarm_demand_fetches_total'), 5)
  await b.stop()
})
