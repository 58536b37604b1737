/** Verification in one place and the fallback chain: peers → shared cache → storage (DESIGN §7, §8). */
import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { test } from 'node:test'
import { createRegistry } from '../../src/obs/metrics.ts'
import { FrameFetcher } from '../../src/read/fetcher.ts'
import { ReadMetrics } from '../../src/read/metrics.ts'
import { SharedCacheSource } from '../../src/read/shared-cache.ts'
import type { FrameSource } from '../../src/read/source.ts'
import { KiB, MemorySource, flipByte, frameData, newId, refOf, vmData, withTmp } from './helpers.ts'

const signal = new AbortController().signal

async function fixture(codec: 'zstd' | 'lz4' | 'none' = 'zstd') {
  const buildId = newId()
  const framed = await frameData(codec, vmData(256 * KiB, 3), 64 * KiB)
  const storage = new MemorySource('storage')
  storage.put(buildId, 'memfile', framed.stored, codec)
  // Raw chunks are named by their index in 4 MiB units, so a raw ref must start on that grid.
  return { buildId, framed, storage, ref: refOf(buildId, 'memfile', framed.table, codec === 'none' ? 0 : 1) }
}

async function metricValue(reg: ReturnType<typeof createRegistry>, name: string, source: string): Promise<number> {
  const m = (await reg.getSingleMetric(name)!.get()).values.find((v) => v.labels.source === source)
  return m?.value ?? 0
}

test('a verified frame from storage is returned decoded and written back to the shared cache', async () => {
  await withTmp(async (dir) => {
    const { framed, storage, ref } = await fixture()
    const shared = new SharedCacheSource({ dir })
    const fetcher = new FrameFetcher({ storage, shared })
    const plain = await fetcher.fetch(ref, signal)
    assert.deepEqual(Buffer.from(plain), framed.plain.subarray(ref.startU, ref.startU + ref.sizeU))
    await shared.idle()
    assert.deepEqual(await readFile(shared.entryPath(ref)), framed.stored.subarray(ref.startC, ref.startC + ref.sizeC))
    // Now the shared cache serves it; storage is not asked again.
    await fetcher.fetch(ref, signal)
    assert.equal(storage.calls, 1)
  })
})

test('a corrupted shared-cache entry is detected, deleted, refetched from storage and rewritten good', async () => {
  await withTmp(async (dir) => {
    const reg = createRegistry()
    const { framed, storage, ref } = await fixture()
    const shared = new SharedCacheSource({ dir })
    const good = framed.stored.subarray(ref.startC, ref.startC + ref.sizeC)
    await mkdir(dirname(shared.entryPath(ref)), { recursive: true })
    await writeFile(shared.entryPath(ref), flipByte(good))
    const penalties: string[] = []
    const fetcher = new FrameFetcher({
      storage,
      shared,
      metrics: new ReadMetrics(reg),
      onPenalty: (s, _r, why) => penalties.push(`${s.name}:${why}`),
    })
    const plain = await fetcher.fetch(ref, signal)
    assert.deepEqual(Buffer.from(plain), framed.plain.subarray(ref.startU, ref.startU + ref.sizeU))
    assert.deepEqual(penalties, ['shared:corrupt'])
    assert.equal(await metricValue(reg, 'snapswarm_frame_verify_failures_total', 'shared'), 1)
    await shared.idle()
    assert.deepEqual(await readFile(shared.entryPath(ref)), good, 'the corrupt entry was replaced by verified bytes')
  })
})

test('a wrong-sized shared entry counts as corrupt too', async () => {
  await withTmp(async (dir) => {
    const { storage, ref } = await fixture('none')
    const shared = new SharedCacheSource({ dir })
    await mkdir(dirname(shared.entryPath(ref)), { recursive: true })
    await writeFile(shared.entryPath(ref), Buffer.alloc(ref.sizeC - 1))
    const fetcher = new FrameFetcher({ storage, shared })
    assert.equal((await fetcher.fetch(ref, signal)).byteLength, ref.sizeU)
    assert.equal(storage.calls, 1)
  })
})

test('a corrupted storage object: clear error, never returned, never written to the shared cache', async () => {
  await withTmp(async (dir) => {
    for (const codec of ['zstd', 'lz4', 'none'] as const) {
      const { storage, ref } = await fixture(codec)
      storage.tamper = codec === 'none' ? (b) => b.subarray(1) : flipByte
      const shared = new SharedCacheSource({ dir })
      const fetcher = new FrameFetcher({ storage, shared })
      await assert.rejects(fetcher.fetch(ref, signal), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_FRAME_UNAVAILABLE')
        assert.match(err.message, /storage: corrupt/)
        return true
      })
      await shared.idle()
      assert.equal(await shared.fetch(ref, signal), null, `${codec}: nothing cached`)
    }
  })
})

test('a truncated object gives an error naming the sizes, not a hang', async () => {
  const { storage, ref } = await fixture()
  storage.tamper = (b) => b.subarray(0, b.byteLength - 10)
  const fetcher = new FrameFetcher({ storage })
  await assert.rejects(fetcher.fetch(ref, signal), new RegExp(`expected ${ref.sizeC} stored bytes, found ${ref.sizeC - 10}`))
})

test('peers first; a bad or failing peer is penalised and the next source used', async () => {
  const { framed, storage, ref } = await fixture('lz4')
  const peer = new MemorySource('peer')
  peer.put(ref.buildId, 'memfile', framed.stored, 'lz4')
  const penalties: string[] = []
  const fetcher = new FrameFetcher({ storage, peers: peer, onPenalty: (s, _r, why) => penalties.push(`${s.name}:${why}`) })
  await fetcher.fetch(ref, signal)
  assert.deepEqual([peer.calls, storage.calls], [1, 0])
  peer.tamper = flipByte
  await fetcher.fetch(ref, signal)
  peer.tamper = null
  peer.fail = new Error('connection reset')
  await fetcher.fetch(ref, signal)
  assert.deepEqual(penalties, ['peer:corrupt', 'peer:error'])
  assert.equal(storage.calls, 2)
  fetcher.setPeers(undefined)
  await fetcher.fetch(ref, signal)
  assert.equal(peer.calls, 3)
})

test('a stalled source that ignores its signal falls back after the source deadline', async () => {
  const { framed, storage, ref } = await fixture()
  const peer = new MemorySource('peer')
  peer.hang = true
  const fetcher = new FrameFetcher({ storage, peers: peer as FrameSource, sourceTimeoutMs: 50 })
  const plain = await fetcher.fetch(ref, signal)
  assert.deepEqual(Buffer.from(plain), framed.plain.subarray(ref.startU, ref.startU + ref.sizeU))
})

test('the caller aborting stops the fetch with its reason', async () => {
  const { storage, ref } = await fixture()
  storage.delayMs = 5_000
  const ac = new AbortController()
  const p = new FrameFetcher({ storage }).fetch(ref, ac.signal)
  ac.abort(new Error('gave up'))
  await assert.rejects(p, /gave up/)
})

test('an optional digest hook rejects a frame the codec accepts', async () => {
  const { storage, ref } = await fixture()
  const fetcher = new FrameFetcher({ storage, verifyDigest: () => false })
  await assert.rejects(fetcher.fetch(ref, signal), /digest mismatch/)
})
