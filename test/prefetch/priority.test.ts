/**
 * Prefetch strictly below demand: a demand read of another frame never waits behind prefetches held
 * by a slow source, and while a demand fetch runs no new prefetch starts (asserted by counters and
 * ordering, never by time). Real files: a file:// bucket, the chunk cache, the fetcher and the codec.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { withTmp } from '../read/helpers.ts'
import { count, FRAME, setup, until } from './helpers.ts'

test('a demand read of another frame completes while prefetches are held by a slow source', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir, { traced: [0, 1, 2, 3], held: [0, 1, 2, 3], concurrency: 2 })
    try {
      await until('two prefetches in the source', () => s.source.requested.length === 2)
      assert.deepEqual(s.source.requested, [0, 1])
      const got = await s.file.read(6 * FRAME + 100, 4096)
      assert.ok(Buffer.from(got).equals(s.plain.subarray(6 * FRAME + 100, 6 * FRAME + 100 + 4096)))
      // The two prefetches are still held: the demand read went past them.
      assert.equal(s.gate.running, 2)
      assert.equal(await count(s.metrics.demandFetches), 1)
      assert.deepEqual(s.source.requested, [0, 1, 6])
      for (const i of [0, 1, 2, 3]) s.source.release(i * FRAME)
      await until('every traced frame prefetched', () => s.source.requested.length === 5)
    } finally {
      await s.close()
    }
  })
})

test('while a demand fetch runs, a freed prefetch slot is not reused; it is once the demand fetch ends', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir, { traced: [0, 1, 2, 3], held: [0, 1, 2, 3], concurrency: 2 })
    try {
      await until('two prefetches in the source', () => s.source.requested.length === 2)
      s.source.hold(6 * FRAME)
      const demand = s.file.read(6 * FRAME, 4096)
      await until('the demand fetch in the source', () => s.source.requested.includes(6))
      s.source.release(0)
      // Prefetch 0 ends; the demand fetch takes its slot: nothing new starts.
      await until('prefetch 0 done', () => s.gate.running === 1)
      assert.equal(s.gate.waiting, 1)
      assert.deepEqual(s.source.requested, [0, 1, 6])
      s.source.release(6 * FRAME)
      const got = await demand
      assert.ok(Buffer.from(got).equals(s.plain.subarray(6 * FRAME, 6 * FRAME + 4096)))
      await until('prefetch 2 started after the demand fetch ended', () => s.source.requested.includes(2))
      assert.deepEqual(s.source.requested, [0, 1, 6, 2])
    } finally {
      await s.close()
    }
  })
})

test('a demand read of a frame being prefetched joins it: a prefetch hit, no demand miss, exact bytes', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir, { traced: [5], held: [5], concurrency: 2 })
    try {
      await until('the prefetch in the source', () => s.source.requested.length === 1)
      const read = s.file.read(5 * FRAME + 8192, 8192)
      s.source.release(5 * FRAME)
      const got = await read
      assert.ok(Buffer.from(got).equals(s.plain.subarray(5 * FRAME + 8192, 5 * FRAME + 16384)))
      assert.deepEqual(s.source.requested, [5])
      assert.equal(await count(s.metrics.prefetchHits), 1)
      assert.equal(await count(s.metrics.demandFetches), 0)
    } finally {
      await s.close()
    }
  })
})

test('closing the file stops the prefetch: frames still queued are never fetched', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir, { traced: [0, 1, 2, 3, 4, 5], held: [0, 1], concurrency: 2 })
    try {
      await until('two prefetches in the source', () => s.source.requested.length === 2)
      await s.closeFile()
      s.source.release(0)
      s.source.release(FRAME)
      // A worker checks the file is open right after its slot is released, in the same continuation.
      await until('the two running prefetches ended', () => s.gate.running === 0)
      assert.equal(s.gate.waiting, 0)
      assert.deepEqual(s.source.requested, [0, 1])
    } finally {
      await s.close()
    }
  })
})

test('the prefetch stops at its budget; prefetched frames no read used are counted unused when the file closes', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir, { traced: [0, 1, 2, 3, 4, 5], concurrency: 1, budgetBytes: 2 * FRAME })
    try {
      await until('two frames prefetched', async () => (await count(s.metrics.prefetchFrames)) === 2)
      await until('the prefetch finished', () => s.gate.running === 0)
      assert.deepEqual(s.source.requested, [0, 1], 'nothing past the budget')
      const got = await s.file.read(FRAME, 4096)
      assert.ok(Buffer.from(got).equals(s.plain.subarray(FRAME, FRAME + 4096)))
      assert.equal(await count(s.metrics.prefetchHits), 1)
    } finally {
      await s.close()
    }
    assert.equal(await count(s.metrics.prefetchUnused), 1, 'frame 0 was prefetched and never read')
  })
})
