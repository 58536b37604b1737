/**
 * The chunk cache: one fetch per frame shared by every reader, readiness by the fetch's own range,
 * aborts that stop only their caller, bounded waits, eviction.
 */
import assert from 'node:assert/strict'
import { open as openFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { dataObjectName } from '../../src/format/layout.ts'
import { createRegistry } from '../../src/obs/metrics.ts'
import { ChunkCache } from '../../src/read/chunk-cache.ts'
import type { FramePlanner } from '../../src/read/chunk-file.ts'
import { FrameFetcher } from '../../src/read/fetcher.ts'
import { ReadMetrics } from '../../src/read/metrics.ts'
import { type FrameRef, StorageSource } from '../../src/read/source.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import { CountingSource, type Framed, flipByte, frameData, KiB, MemorySource, MiB, newId, until, vmData, withTmp } from './helpers.ts'

interface Setup {
  cache: ChunkCache
  storage: MemorySource
  framed: Framed
  buildId: string
  plan: FramePlanner
  metrics: ReadMetrics
  reg: ReturnType<typeof createRegistry>
}

async function setup(dir: string, opts: { size?: number; frameSize?: number; maxBytes?: number } = {}): Promise<Setup> {
  const reg = createRegistry()
  const metrics = new ReadMetrics(reg)
  const buildId = newId()
  const framed = await frameData('zstd', vmData(opts.size ?? 1 * MiB, 7), opts.frameSize ?? 256 * KiB)
  const storage = new MemorySource('storage')
  storage.put(buildId, 'memfile', framed.stored)
  const fetcher = new FrameFetcher({ sources: [storage], metrics })
  const cache = await ChunkCache.open({ dir, maxBytes: opts.maxBytes ?? 1024 * MiB, fetcher, metrics })
  const plan: FramePlanner = (offset) => {
    const f = framed.table.frameAt(offset)
    return { buildId, kind: 'memfile', codec: 'zstd', ...f }
  }
  return { cache, storage, framed, buildId, plan, metrics, reg }
}

const slice = (b: Buffer, off: number, len: number) => b.subarray(off, off + len)
/** A content key (cache-key.ts) for the tests that do not exercise keys. */
const KEY = 'c0ffee'.padEnd(32, '0')
const fileDir = (dir: string, id: string, key = KEY) => join(dir, `${id}.${key}`)

test('storm: 64 concurrent readers of blocks inside one cold frame cause exactly one storage request', async () => {
  await withTmp(async (dir) => {
    // Real fs ObjectStore and codec; a counting wrapper around the storage source.
    const store = await FsStore.open(join(dir, 'bucket'))
    const buildId = newId()
    const framed = await frameData('zstd', vmData(1 * MiB, 9), 256 * KiB)
    await store.put(dataObjectName(buildId, 'memfile', 'zstd'), framed.stored)
    const storage = new CountingSource(new StorageSource(store), 20) // held so every reader arrives first
    const reg = createRegistry()
    const metrics = new ReadMetrics(reg)
    const cache = await ChunkCache.open({ dir: join(dir, 'cache'), maxBytes: 64 * MiB, fetcher: new FrameFetcher({ sources: [storage], metrics }), metrics })
    const plan: FramePlanner = (offset) => ({ buildId, kind: 'memfile', codec: 'zstd', ...framed.table.frameAt(offset) })
    const lease = await cache.acquire(buildId, 'memfile', KEY)
    const frame = framed.table.frames[1]
    const reads = Array.from({ length: 64 }, (_, i) => {
      const off = frame.startU + ((i * 4 * KiB) % frame.sizeU)
      const dst = Buffer.alloc(4 * KiB)
      return lease.file.readInto(dst, off, plan).then(() => assert.deepEqual(dst, slice(framed.plain, off, 4 * KiB)))
    })
    await Promise.all(reads)
    assert.equal(storage.calls, 1)
    assert.equal((await reg.getSingleMetric('snapswarm_fetch_dedup_joins_total')!.get()).values[0].value, 63)
    await lease.release()
    await cache.close()
  })
})

test('a reader that aborts does not break other readers of the same frame; the fetch runs on', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir)
    s.storage.delayMs = 50
    const lease = await s.cache.acquire(s.buildId, 'memfile', KEY)
    const ac = new AbortController()
    const first = lease.file.readInto(Buffer.alloc(4096), 0, s.plan, ac.signal)
    const others = Array.from({ length: 8 }, (_, i) => {
      const dst = Buffer.alloc(4096)
      return lease.file.readInto(dst, i * 8192, s.plan).then(() => dst)
    })
    ac.abort(new Error('first reader gave up'))
    await assert.rejects(first, /first reader gave up/)
    const got = await Promise.all(others)
    for (const [i, dst] of got.entries()) assert.deepEqual(dst, slice(s.framed.plain, i * 8192, 4096))
    assert.equal(s.storage.calls, 1, 'the aborted first caller did not cancel the shared fetch')
    await lease.release()
    await s.cache.close()
  })
})

test('every waiter of a failing fetch gets the error (no hang), nothing is marked present', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir)
    s.storage.tamper = flipByte
    s.storage.delayMs = 10
    const lease = await s.cache.acquire(s.buildId, 'memfile', KEY)
    const results = await Promise.allSettled(Array.from({ length: 16 }, (_, i) => lease.file.readInto(Buffer.alloc(4096), i * 4096, s.plan)))
    assert.ok(results.every((r) => r.status === 'rejected' && /ERR_FRAME_UNAVAILABLE|no source produced/.test(String(r.reason))))
    assert.equal(lease.file.bytes, 0, 'a frame that failed verification is never cached')
    s.storage.tamper = null
    const dst = Buffer.alloc(4096)
    await lease.file.readInto(dst, 0, s.plan)
    assert.deepEqual(dst, slice(s.framed.plain, 0, 4096))
    await lease.release()
    await s.cache.close()
  })
})

test('regression: zeroed pages after a header switch: readiness is judged by the fetch\'s own range', async () => {
  await withTmp(async (dir) => {
    // Geometry A: 256 KiB zstd frames. Geometry B (the header after a switch): 1 MiB lz4 frames of
    // the same data file. A fetch of A's frame [0, 256K) is in flight when a B reader needs a page at
    // 300K, inside B's frame [0, 1M) which starts at the same offset. Joining the in-flight fetch by
    // frame start (the Go bug) would release the reader with that page never written: zeros.
    const s = await setup(dir, { frameSize: 256 * KiB })
    const b = await frameData('lz4', s.framed.plain, 1 * MiB)
    s.storage.put(s.buildId, 'memfile', b.stored, 'lz4')
    const planB: FramePlanner = (offset) => ({ buildId: s.buildId, kind: 'memfile', codec: 'lz4', ...b.table.frameAt(offset) })
    s.storage.delayMs = 30
    const lease = await s.cache.acquire(s.buildId, 'memfile', KEY)
    const a = lease.file.readInto(Buffer.alloc(4096), 0, s.plan)
    let off = 300 * KiB
    while (slice(s.framed.plain, off, 4096).every((x) => x === 0)) off += 4096 // a page that is not zeros
    const dst = Buffer.alloc(4096)
    await Promise.all([a, lease.file.readInto(dst, off, planB)])
    assert.deepEqual(dst, slice(s.framed.plain, off, 4096))
    assert.equal(s.storage.calls, 2)
    // The A reader of a page B's fetch covers joins B's fetch by its range, whatever A's geometry says.
    const dst2 = Buffer.alloc(4096)
    await lease.file.readInto(dst2, 600 * KiB, s.plan)
    assert.deepEqual(dst2, slice(s.framed.plain, 600 * KiB, 4096))
    assert.equal(s.storage.calls, 2)
    await lease.release()
    await s.cache.close()
  })
})

test('a planner that returns a unit not covering the page is an error, not a wrong read', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir)
    const lease = await s.cache.acquire(s.buildId, 'memfile', KEY)
    const wrong: FramePlanner = () => s.plan(0)
    await assert.rejects(lease.file.readInto(Buffer.alloc(4096), 600 * KiB, wrong), { code: 'ERR_FORMAT' })
    await lease.release()
    await s.cache.close()
  })
})

test('the cache survives a restart: presence is persisted, no refetch', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir)
    let lease = await s.cache.acquire(s.buildId, 'memfile', KEY)
    await lease.file.readInto(Buffer.alloc(8192), 0, s.plan)
    await lease.release()
    await s.cache.close()
    const reopened = await ChunkCache.open({ dir, maxBytes: 1024 * MiB, fetcher: { fetch: () => Promise.reject(new Error('no fetch expected')) } })
    assert.equal(reopened.bytes, 256 * KiB)
    lease = await reopened.acquire(s.buildId, 'memfile', KEY)
    const dst = Buffer.alloc(8192)
    await lease.file.readInto(dst, 100 * KiB, s.plan)
    assert.deepEqual(dst, slice(s.framed.plain, 100 * KiB, 8192))
    await lease.release()
    await reopened.close()
  })
})

test('eviction: least recently used build files first, never one in use', async () => {
  await withTmp(async (dir) => {
    const reg = createRegistry()
    const metrics = new ReadMetrics(reg)
    const storage = new MemorySource()
    const builds = await Promise.all([0, 1, 2, 3].map(async (i) => ({ id: newId(), framed: await frameData('lz4', vmData(512 * KiB, i), 256 * KiB) })))
    for (const b of builds) storage.put(b.id, 'memfile', b.framed.stored, 'lz4')
    const cache = await ChunkCache.open({ dir, maxBytes: 1.5 * MiB, fetcher: new FrameFetcher({ sources: [storage], metrics }), metrics })
    const planOf = (i: number) => (offset: number): FrameRef => ({ buildId: builds[i].id, kind: 'memfile', codec: 'lz4', ...builds[i].framed.table.frameAt(offset) })
    const fill = async (i: number, keep = false) => {
      const lease = await cache.acquire(builds[i].id, 'memfile', KEY)
      await lease.file.readInto(Buffer.alloc(512 * KiB), 0, planOf(i))
      if (!keep) await lease.release() // settles eviction
      return lease
    }
    const dirs = async () => (await readdir(dir)).sort()
    const ids = (...i: number[]) => i.map((j) => `${builds[j].id}.${KEY}`).sort()
    const held = await fill(0, true) // in use the whole time
    await fill(1)
    await fill(2)
    await fill(3) // 2 MiB > 1.5 MiB: 0 is in use, 1 is the least recently used idle file
    assert.deepEqual(await dirs(), ids(0, 2, 3))
    await fill(1) // over again: 0 is still in use, now 2 is idle and older than 3
    assert.deepEqual(await dirs(), ids(0, 1, 3))
    assert.equal(cache.bytes, 1.5 * MiB)
    assert.equal((await reg.getSingleMetric('snapswarm_chunk_cache_evictions_total')!.get()).values[0].value, 2)
    // The held file is still readable and intact.
    const dst = Buffer.alloc(4096)
    await held.file.readInto(dst, 4096, planOf(0))
    assert.deepEqual(dst, slice(builds[0].framed.plain, 4096, 4096))
    await held.release()
    await cache.close()
  })
})

test('a corrupt presence record or an orphan file is discarded at open: refetch, never trust', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir)
    const lease = await s.cache.acquire(s.buildId, 'memfile', KEY)
    await lease.file.readInto(Buffer.alloc(4096), 0, s.plan)
    await lease.release()
    await s.cache.close()
    await writeFile(join(fileDir(dir, s.buildId), 'memfile.map'), 'garbage')
    await writeFile(join(fileDir(dir, s.buildId), 'rootfs.ext4.data'), 'no record for me')
    const reopened = await ChunkCache.open({ dir, maxBytes: 1024 * MiB, fetcher: new FrameFetcher({ sources: [s.storage] }) })
    assert.equal(reopened.bytes, 0)
    assert.deepEqual((await readdir(fileDir(dir, s.buildId))).sort(), ['memfile.data'])
    const l2 = await reopened.acquire(s.buildId, 'memfile', KEY)
    const dst = Buffer.alloc(4096)
    await l2.file.readInto(dst, 0, s.plan)
    assert.deepEqual(dst, slice(s.framed.plain, 0, 4096))
    assert.equal(s.storage.calls, 2, 'refetched')
    await l2.release()
    await reopened.close()
  })
})

test('read-ahead: a streaming reader (large sequential reads) gets the next frames fetched; 4 KiB faults do not', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir, { size: 4 * MiB, frameSize: 256 * KiB })
    const lease = await s.cache.acquire(s.buildId, 'memfile', KEY)
    for (let off = 0; off < 64 * KiB; off += 4 * KiB) await lease.file.readInto(Buffer.alloc(4 * KiB), off, s.plan)
    assert.equal(s.storage.calls, 1, 'small sequential reads fetch only what they touch')
    const dst = Buffer.alloc(1 * MiB)
    await lease.file.readInto(dst, 0, s.plan)
    await lease.file.readInto(dst, 1 * MiB, s.plan) // streaming from here on
    await until(() => s.storage.calls >= 16, 'the read-ahead')
    assert.equal(s.storage.calls, 16, 'the whole 4 MiB is fetched: 2 MiB read + 2 MiB read ahead')
    await lease.file.readInto(dst, 2 * MiB, s.plan) // served from the read-ahead
    assert.deepEqual(dst, slice(s.framed.plain, 2 * MiB, 1 * MiB))
    assert.equal(s.storage.calls, 16)
    await lease.release()
    await s.cache.close()
  })
})

test('read-ahead: the next streaming reads copy the verified bytes fetched ahead instead of reading back the file they were written to', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir, { size: 4 * MiB, frameSize: 256 * KiB })
    const lease = await s.cache.acquire(s.buildId, 'memfile', KEY)
    const dst = Buffer.alloc(1 * MiB)
    await lease.file.readInto(dst, 0, s.plan)
    await lease.file.readInto(dst, 1 * MiB, s.plan) // streaming: 2-4 MiB fetched ahead
    await until(() => lease.file.bytes === 4 * MiB, 'the read-ahead written to the cache file')
    // Scribble over the written copy: a read that went back to the file would return these bytes.
    const fh = await openFile(lease.file.dataPath, 'r+')
    await fh.write(Buffer.alloc(2 * MiB, 0xa5), 0, 2 * MiB, 2 * MiB)
    await fh.close()
    for (const off of [2 * MiB, 3 * MiB]) {
      await lease.file.readInto(dst, off, s.plan)
      assert.deepEqual(dst, slice(s.framed.plain, off, 1 * MiB), `the verified bytes at ${off}`)
    }
    assert.equal(s.storage.calls, 16, 'one fetch per frame')
    await lease.release()
    await s.cache.close()
  })
})

test('early release: waiters get the verified bytes before the write; pages are marked present only once written', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir)
    const lease = await s.cache.acquire(s.buildId, 'memfile', KEY)
    // Hold every write to the chunk file until `open()` is called: the verified buffer exists, the file is holes.
    const probe = await openFile(join(dir, 'probe'), 'w')
    const proto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => Promise<unknown> }
    await probe.close()
    const write = proto.write
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    let held = 0
    proto.write = async function (this: unknown, ...args: unknown[]) {
      held++
      await gate
      return write.apply(this, args)
    }
    try {
      const frame = s.framed.table.frames[1]
      const a = Buffer.alloc(4096)
      await lease.file.readInto(a, frame.startU, s.plan) // resolves although the write is held
      assert.deepEqual(a, slice(s.framed.plain, frame.startU, 4096))
      // The write starts after the waiting readers have their bytes (its page checksums come first).
      await until(() => held === 1, 'the frame write to start')
      assert.equal(lease.file.bytes, 0, 'not marked present before its write completes')
      // A second reader of another page of the same frame must not go through the (still empty) file:
      // it joins the fetch still in flight and copies its verified buffer.
      const off = frame.startU + frame.sizeU - 8192
      const b = Buffer.alloc(8192)
      await lease.file.readInto(b, off, s.plan)
      assert.deepEqual(b, slice(s.framed.plain, off, 8192))
      assert.equal(s.storage.calls, 1)
      open()
      await until(() => lease.file.bytes > 0, 'the held write to complete')
      assert.equal(lease.file.bytes, frame.sizeU, 'marked present once written')
      // Now a hit reads through the file.
      const c = Buffer.alloc(8192)
      await lease.file.readInto(c, off, s.plan)
      assert.deepEqual(c, b)
      assert.equal(s.storage.calls, 1)
    } finally {
      proto.write = write
      open()
    }
    await lease.release()
    await s.cache.close()
  })
})
