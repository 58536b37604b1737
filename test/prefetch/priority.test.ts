/**
 * Prefetch strictly below demand: a demand read of another frame never waits behind prefetches held
 * by a slow source, and while a demand fetch runs no new prefetch starts (asserted by counters and
 * ordering, never by time). Real files: a file:// bucket, the chunk cache, the fetcher and the codec.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { singleLayerHeader } from '../../src/format/mapping.ts'
import type { FileKind } from '../../src/format/types.ts'
import { BuildStatusBoard } from '../../src/node/build-status.ts'
import { ResumedFile } from '../../src/node/resumed-file.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { createRegistry } from '../../src/obs/metrics.ts'
import { PrefetchGate } from '../../src/prefetch/gate.ts'
import { PrefetchService } from '../../src/prefetch/service.ts'
import { encodeTrace, traceObjectName } from '../../src/prefetch/trace.ts'
import { TraceStore } from '../../src/prefetch/traces.ts'
import { BuildReader } from '../../src/read/build-reader.ts'
import { ChunkCache } from '../../src/read/chunk-cache.ts'
import { FrameFetcher } from '../../src/read/fetcher.ts'
import { ReadMetrics } from '../../src/read/metrics.ts'
import { dataObjectName, type FrameRef, type FrameSource, StorageSource } from '../../src/read/source.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import { KiB, MiB, frameData, newId, vmData, withTmp } from '../read/helpers.ts'

const FRAME = 256 * KiB

/** Storage that holds the requests for chosen frames until the test releases them, and logs every request. */
class HeldSource implements FrameSource {
  readonly name = 'storage'
  readonly inner: FrameSource
  readonly requested: number[] = []
  private readonly held = new Map<number, { release: () => void; gate: Promise<void> }>()

  constructor(inner: FrameSource) {
    this.inner = inner
  }

  hold(startU: number): void {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    this.held.set(startU, { release, gate })
  }

  release(startU: number): void {
    this.held.get(startU)?.release()
  }

  async fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null> {
    this.requested.push(ref.startU / FRAME)
    await this.held.get(ref.startU)?.gate
    return this.inner.fetch(ref, signal)
  }
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

async function setup(dir: string, traced: number[], concurrency: number) {
  const store = await FsStore.open(join(dir, 'bucket'))
  const buildId = newId()
  const kind: FileKind = 'memfile'
  const framed = await frameData('zstd', vmData(8 * FRAME, 3), FRAME)
  await store.put(dataObjectName(buildId, kind, 'zstd'), framed.stored)
  const header = singleLayerHeader({ buildId, kind, info: { buildId, fileSize: framed.plain.length, sha256: new Uint8Array(32), frames: framed.table } })
  await store.put(traceObjectName(buildId, kind), encodeTrace({ buildId, kind, size: header.size, entries: traced.map((i) => ({ offset: i * FRAME, ms: i })) }))
  const source = new HeldSource(new StorageSource(store))
  const metrics = new ReadMetrics(createRegistry())
  const fetcher = new FrameFetcher({ storage: source, metrics })
  const cache = await ChunkCache.open({ dir: join(dir, 'cache'), maxBytes: 64 * MiB, fetcher, metrics })
  const board = new BuildStatusBoard()
  const gate = new PrefetchGate(fetcher, concurrency)
  const traces = new TraceStore({ store, status: board, log: silentLogger })
  const service = new PrefetchService({
    settings: { enabled: true, record: true, budgetBytes: 64 * MiB, recordWindowMs: 60_000, maxEntries: 1000 },
    traces,
    gate,
    log: silentLogger,
  })
  const file = await ResumedFile.open(
    {
      buildId,
      kind,
      board,
      log: silentLogger,
      openReader: (h) => BuildReader.open({ header: h, kind, cache, metrics }),
      loadFinal: async () => header,
    },
    header,
  )
  const close = async () => {
    await session.close()
    await file.close()
    await cache.close()
    await store.close()
  }
  // Held before the session starts: its first prefetches must block in the source.
  for (const i of traced) source.hold(i * FRAME)
  const session = service.attach(buildId, kind, file)
  return { source, metrics, gate, file, framed, close }
}

test('a demand read of another frame completes while prefetches are held by a slow source', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir, [0, 1, 2, 3], 2)
    try {
      await until('two prefetches in the source', () => s.source.requested.length === 2)
      assert.deepEqual(s.source.requested, [0, 1])
      const got = await s.file.read(6 * FRAME + 100, 4096)
      assert.ok(Buffer.from(got).equals(s.framed.plain.subarray(6 * FRAME + 100, 6 * FRAME + 100 + 4096)))
      // The two prefetches are still held: the demand read went past them.
      assert.equal(s.gate.running, 2)
      assert.equal((await s.metrics.demandFetches.get()).values[0].value, 1)
      assert.deepEqual(s.source.requested, [0, 1, 6])
      for (const i of [0, 1, 2, 3]) s.source.release(i * FRAME)
      await until('every traced frame prefetched', () => s.source.requested.length === 5)
    } finally {
      for (const i of [0, 1, 2, 3]) s.source.release(i * FRAME)
      await s.close()
    }
  })
})

test('while a demand fetch runs, a freed prefetch slot is not reused; it is once the demand fetch ends', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir, [0, 1, 2, 3], 2)
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
      assert.ok(Buffer.from(got).equals(s.framed.plain.subarray(6 * FRAME, 6 * FRAME + 4096)))
      await until('prefetch 2 started after the demand fetch ended', () => s.source.requested.includes(2))
      assert.deepEqual(s.source.requested, [0, 1, 6, 2])
    } finally {
      for (const i of [0, 1, 2, 3, 6]) s.source.release(i * FRAME)
      await s.close()
    }
  })
})

test('a demand read of a frame being prefetched joins it: a prefetch hit, no demand miss, exact bytes', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir, [5], 2)
    try {
      await until('the prefetch in the source', () => s.source.requested.length === 1)
      const read = s.file.read(5 * FRAME + 8192, 8192)
      s.source.release(5 * FRAME)
      const got = await read
      assert.ok(Buffer.from(got).equals(s.framed.plain.subarray(5 * FRAME + 8192, 5 * FRAME + 16384)))
      assert.deepEqual(s.source.requested, [5])
      assert.equal((await s.metrics.prefetchHits.get()).values[0].value, 1)
      assert.equal((await s.metrics.demandFetches.get()).values[0]?.value ?? 0, 0)
    } finally {
      s.source.release(5 * FRAME)
      await s.close()
    }
  })
})
