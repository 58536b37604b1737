/**
 * Failure paths of a pause, in-process nodes over real TCP: a restarted origin resumes an unfinished
 * upload (or reports the build failed when its source is gone); the origin never evicts a pending
 * build's local copy; a child of a build still pending on another node is paused and read.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { SnapswarmNode } from '../../src/node/daemon.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
let env: TestNodes
let dir: string
let reader: SnapswarmNode
const gen = new VmDataGenerator(5)

/** A node on the test's bucket; a name used again restarts on the same data dir. */
function start(name: string, extra: { uploadRateBytesPerSec?: number; bootstrap?: string[]; pendingGraceMs?: number } = {}, pendingCodec?: 'lz4'): Promise<SnapswarmNode> {
  const node = { bootstrap: extra.bootstrap ?? [], uploadRateBytesPerSec: extra.uploadRateBytesPerSec ?? 0, pendingGraceMs: extra.pendingGraceMs ?? 300_000 }
  return env.startTestNode(name, { config: { node }, pendingCodec })
}

async function state(node: SnapswarmNode, id: string): Promise<string | undefined> {
  const res = await fetch(`${node.apiUrl}/v1/builds/${id}`)
  return res.status === 200 ? ((await res.json()) as { state: string }).state : undefined
}

async function read(node: SnapswarmNode, id: string, start: number, end: number): Promise<Buffer> {
  const res = await fetch(`${node.apiUrl}/v1/builds/${id}/memfile`, { headers: { range: `bytes=${start}-${end}` } })
  const body = Buffer.from(await res.arrayBuffer())
  assert.equal(res.status, 206, body.toString())
  return body
}

before(async () => {
  env = await testNodes({ prefix: 'restart', config: { peers: { announceIntervalMs: 200, announceTtlMs: 3000 }, switchover: { finalHeaderPollMs: 5000 } } })
  dir = env.dir
  reader = await start('reader')
})

after(async () => {
  await env?.close()
})

test('a restarted origin resumes its unfinished upload; the build then reads byte-exactly from storage', async () => {
  const data = gen.next(6 * MiB)
  const src = join(dir, 'mem-a')
  await writeFile(src, data)
  const originDir = join(dir, 'origin-a')
  let origin = await start('origin-a', { uploadRateBytesPerSec: 50_000, pendingGraceMs: 1 })
  const id = randomUUID()
  const res = await fetch(`${origin.apiUrl}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ files: { memfile: src } }) })
  assert.equal(res.status, 202)
  await waitFor('pending', async () => (await state(origin, id)) === 'pending')
  // A pending build is never evicted, even with a 1 ms grace period: count the node's eviction
  // sweeps (every second here) and look once two have run since the build was pending.
  const sweeps = countEvictionSweeps(origin)
  await waitFor('two eviction sweeps', async () => sweeps() >= 2, 30_000)
  assert.equal(await state(origin, id), 'pending')
  assert.ok(existsSync(join(originDir, 'builds', id)))
  await origin.stop() // mid-upload
  assert.ok(!existsSync(join(dir, 'bucket', id, 'memfile.header')), 'no header was written')

  origin = await start('origin-a', { bootstrap: [reader.addrs()[0]] })
  try {
    await waitFor('the resumed upload', async () => (await state(origin, id)) === 'uploaded', 30_000)
    assert.ok((await read(reader, id, 0, data.byteLength - 1)).equals(data))
  } finally {
    await origin.stop()
  }
})

test('a restarted origin whose source file is gone reports the build failed', async () => {
  const src = join(dir, 'mem-b')
  await writeFile(src, gen.next(4 * MiB))
  let origin = await start('origin-b', { uploadRateBytesPerSec: 20_000 })
  const id = randomUUID()
  assert.equal((await fetch(`${origin.apiUrl}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ files: { memfile: src } }) })).status, 202)
  await waitFor('pending', async () => (await state(origin, id)) === 'pending')
  await origin.stop()
  await unlink(src)
  origin = await start('origin-b')
  try {
    await waitFor('the failure', async () => (await state(origin, id)) === 'failed', 10_000)
    const info = (await (await fetch(`${origin.apiUrl}/v1/builds/${id}`)).json()) as { error: string }
    assert.match(info.error, /ENOENT|no such file/)
  } finally {
    await origin.stop()
  }
})

test('a child of a build still pending on another node is paused there and read on a third', async () => {
  const a = await start('a', { uploadRateBytesPerSec: 300_000, bootstrap: [reader.addrs()[0]] }, 'lz4')
  const b = await start('b', { bootstrap: [reader.addrs()[0], a.addrs()[0]] })
  try {
    const base = gen.next(8 * MiB)
    const srcA = join(dir, 'base')
    await writeFile(srcA, base)
    const parent = randomUUID()
    assert.equal((await fetch(`${a.apiUrl}/v1/builds/${parent}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ files: { memfile: srcA } }) })).status, 202)
    await waitFor('parent pending on b', async () => (await state(b, parent)) === 'pending')
    const diff = gen.next(2 * MiB)
    const srcB = join(dir, 'diff')
    await writeFile(srcB, diff)
    const child = randomUUID()
    const body = { parent, files: { memfile: srcB }, dirty: { memfile: [[4 * MiB, 6 * MiB]] } }
    const res = await fetch(`${b.apiUrl}/v1/builds/${child}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    assert.equal(res.status, 202, await res.text())
    const expected = Buffer.from(base)
    diff.copy(expected, 4 * MiB)
    await waitFor('child pending on the reader', async () => (await state(reader, child)) === 'pending')
    assert.equal(await state(reader, parent), 'pending', 'the parent is still pending while the child is read')
    assert.ok((await read(reader, child, 0, expected.byteLength - 1)).equals(expected))
    // The same file in process (SnapswarmNode.openRead, what an embedding host calls), an unaligned range.
    const f = await reader.openRead(child, 'memfile')
    try {
      assert.equal(f.size, expected.byteLength)
      assert.ok(Buffer.from(await f.read(MiB + 123, 5 * MiB)).equals(expected.subarray(MiB + 123, 6 * MiB + 123)))
    } finally {
      await f.close()
    }
    await waitFor('both uploaded', async () => (await state(reader, child)) === 'uploaded' && (await state(reader, parent)) === 'uploaded', 60_000)
    assert.ok((await read(reader, child, 3 * MiB, 7 * MiB - 1)).equals(expected.subarray(3 * MiB, 7 * MiB)))
  } finally {
    await Promise.allSettled([a.stop(), b.stop()])
  }
})

/** Counts the finished eviction sweeps of an in-process node from now on (its local builds, wrapped). */
function countEvictionSweeps(node: SnapswarmNode): () => number {
  const builds = (node as unknown as { builds: { evictFinished: (...args: never[]) => Promise<unknown> } }).builds
  const evict = builds.evictFinished.bind(builds)
  let done = 0
  builds.evictFinished = async (...args) => {
    try {
      return await evict(...args)
    } finally {
      done++
    }
  }
  return () => done
}
