/**
 * End to end through the real fs ObjectStore and real codecs: a 3-layer chain (zstd base, raw middle,
 * lz4 top, with zeroed ranges) read back at random must equal a model of the virtual file.
 */
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { FrameTable } from '../../src/format/frame-table.ts'
import { type BuildInfo, encodeHeader, type Header } from '../../src/format/header.ts'
import { dataObjectName, headerObjectName } from '../../src/format/layout.ts'
import { layerHeader, singleLayerHeader } from '../../src/format/mapping.ts'
import type { BuildId, CodecName } from '../../src/format/types.ts'
import { createRegistry } from '../../src/obs/metrics.ts'
import { ReadMetrics } from '../../src/read/metrics.ts'
import { openStoredBuildFile } from '../../src/read/open.ts'
import { SharedCacheSource } from '../../src/read/sources/shared-cache.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import type { ObjectStore } from '../../src/storage/store.ts'
import { frameData, KiB, MiB, newId, vmData, withTmp } from './helpers.ts'

const SIZE = 6 * MiB
const BLOCK = 4 * KiB

interface Range {
  start: number
  end: number
}

/** Deterministic block-aligned, sorted, disjoint ranges covering roughly `share` of the file. */
function ranges(seed: number, count: number, maxBlocks: number): Range[] {
  let x = Math.imul(seed, 2654435761)
  const rnd = (n: number) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    return x % n
  }
  const out: Range[] = []
  let pos = 0
  for (let i = 0; i < count; i++) {
    const start = pos + rnd(Math.floor(SIZE / BLOCK / count)) * BLOCK
    const end = Math.min(SIZE, start + (1 + rnd(maxBlocks)) * BLOCK)
    if (start >= SIZE) break
    out.push({ start, end })
    pos = end
  }
  return out
}

async function putLayer(store: ObjectStore, id: BuildId, codec: CodecName, data: Buffer, frameSize: number): Promise<BuildInfo> {
  const framed = await frameData(codec, data, frameSize)
  await store.put(dataObjectName(id, 'memfile', codec), framed.stored, { metadata: { 'uncompressed-size': String(data.length) } })
  const frames = codec === 'none' ? new FrameTable('none', []) : framed.table
  return { buildId: id, fileSize: data.length, sha256: new Uint8Array(32), frames }
}

async function putHeader(store: ObjectStore, h: Header): Promise<void> {
  await store.put(headerObjectName(h.buildId, 'memfile'), encodeHeader(h))
}

/** Apply a layer's dirty ranges (data packed in order) and zeroed ranges to the model. */
function overlay(model: Buffer, dirty: Range[], empty: Range[], seed: number): Buffer {
  const data = vmData(dirty.reduce((n, r) => n + r.end - r.start, 0), seed)
  let p = 0
  for (const r of dirty) {
    data.copy(model, r.start, p, p + r.end - r.start)
    p += r.end - r.start
  }
  for (const r of empty) model.fill(0, r.start, r.end)
  return data
}

async function chain(store: ObjectStore) {
  const [a, b, c] = [newId(), newId(), newId()]
  const model = vmData(SIZE, 11)
  const ha = singleLayerHeader({ buildId: a, blockSize: BLOCK, info: await putLayer(store, a, 'zstd', Buffer.from(model), 128 * KiB) })
  const bDirty = ranges(2, 40, 24)
  const bData = overlay(model, bDirty, [], 22)
  const hb = layerHeader(ha, { buildId: b, dirty: bDirty, info: await putLayer(store, b, 'none', bData, 4 * MiB) })
  const cDirty = ranges(3, 30, 40)
  const cEmpty = ranges(4, 12, 8).filter((e) => !cDirty.some((d) => e.start < d.end && d.start < e.end))
  assert.ok(cEmpty.length > 0 && bDirty.length > 20 && cDirty.length > 20)
  const cData = overlay(model, cDirty, cEmpty, 33)
  const hc = layerHeader(hb, { buildId: c, dirty: cDirty, empty: cEmpty, info: await putLayer(store, c, 'lz4', cData, 64 * KiB) })
  for (const h of [ha, hb, hc]) await putHeader(store, h)
  return { ids: [a, b, c], model, top: hc }
}

/** Counts ranged reads per object, to check that every layer is routed to its own data file. */
function counting(store: ObjectStore): ObjectStore & { ranges: Map<string, number> } {
  const counts = new Map<string, number>()
  return Object.assign(Object.create(store) as ObjectStore, {
    ranges: counts,
    getRange(name: string, offset: number, length: number, signal?: AbortSignal) {
      counts.set(name, (counts.get(name) ?? 0) + 1)
      return store.getRange(name, offset, length, signal)
    },
  })
}

test('10,000 random reads across a 3-layer chain (zstd, raw, lz4, zeros) equal the model', async () => {
  await withTmp(async (dir) => {
    const store = counting(await FsStore.open(join(dir, 'bucket')))
    const { ids, model, top } = await chain(store)
    assert.equal(top.version, 4)
    const reg = createRegistry()
    const readMetrics = new ReadMetrics(reg)
    const file = await openStoredBuildFile({
      store,
      buildId: ids[2],
      kind: 'memfile',
      cacheDir: join(dir, 'cache'),
      shared: new SharedCacheSource({ dir: join(dir, 'shared'), metrics: readMetrics }),
      metrics: readMetrics,
    })
    assert.equal(file.size, SIZE)
    let x = 12345
    const rnd = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0
      return x % n
    }
    for (let batch = 0; batch < 10_000 / 50; batch++) {
      const reads = Array.from({ length: 50 }, async () => {
        const offset = rnd(SIZE)
        const length = 1 + rnd(Math.min(96 * KiB, SIZE - offset))
        const got = await file.read(offset, length)
        if (!model.subarray(offset, offset + length).equals(got)) assert.fail(`read ${offset}+${length} differs from the model`)
      })
      await Promise.all(reads)
    }
    assert.ok(model.equals(await file.read(0, SIZE)), 'a whole-file read equals the model')
    // Each layer came from its own data object; the raw middle layer in 4 MiB chunks (at most 2).
    assert.deepEqual([...store.ranges.keys()].sort(), ids.map((id, i) => dataObjectName(id, 'memfile', (['zstd', 'none', 'lz4'] as const)[i])).sort())
    assert.ok(store.ranges.get(dataObjectName(ids[1], 'memfile', 'none'))! <= 2)
    const metrics = await reg.getMetricsAsJSON()
    const reads = metrics.find((m) => m.name === 'snapswarm_reads_total')!.values[0].value
    assert.equal(reads, 10_001)
    await file.close()
  })
})

test('a V4 header whose raw ancestor is absent asks that layer\'s own header, never guesses', async () => {
  await withTmp(async (dir) => {
    const store = await FsStore.open(join(dir, 'bucket'))
    const [a, b] = [newId(), newId()]
    const model = vmData(SIZE, 5)
    const ha = singleLayerHeader({ buildId: a, blockSize: BLOCK, info: await putLayer(store, a, 'none', Buffer.from(model), 4 * MiB) })
    assert.equal(ha.version, 3)
    const dirty = ranges(9, 10, 16)
    const data = overlay(model, dirty, [], 6)
    const layered = layerHeader(ha, { buildId: b, dirty, info: await putLayer(store, b, 'zstd', data, 128 * KiB) })
    // Whatever layerHeader does with V3 ancestors, store a V4 header that leaves the raw layer out.
    const hb: Header = { ...layered, builds: new Map([...layered.builds].filter(([id]) => id !== a)) }
    await putHeader(store, ha)
    await putHeader(store, hb)
    const file = await openStoredBuildFile({ store, buildId: b, kind: 'memfile', cacheDir: join(dir, 'cache') })
    assert.ok(model.equals(Buffer.from(await file.read(0, SIZE))))
    await file.close()
    // Without the layer's own header there is nothing to go on: a clear error, not "raw" by default.
    await store.delete(headerObjectName(a, 'memfile'))
    await assert.rejects(openStoredBuildFile({ store, buildId: b, kind: 'memfile' }), { code: 'ERR_FORMAT' })
  })
})

// A hang would run into the test's timeout; the error names the cut object at the first try.
test('a truncated data object gives a clear error at once, not a hang', { timeout: 120_000 }, async () => {
  await withTmp(async (dir) => {
    const store = await FsStore.open(join(dir, 'bucket'))
    const a = newId()
    const data = vmData(1 * MiB, 8)
    const info = await putLayer(store, a, 'zstd', data, 128 * KiB)
    await putHeader(store, singleLayerHeader({ buildId: a, blockSize: BLOCK, info }))
    const name = dataObjectName(a, 'memfile', 'zstd')
    const stored = await store.get(name)
    await store.delete(name) // writes are create-only: replace the object by deleting it first
    await store.put(name, stored.subarray(0, stored.byteLength - 100))
    await mkdir(join(dir, 'cache'), { recursive: true })
    const file = await openStoredBuildFile({ store, buildId: a, kind: 'memfile', cacheDir: join(dir, 'cache') })
    await assert.rejects(file.read(1 * MiB - 4096, 4096), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_FRAME_UNAVAILABLE')
      assert.match(err.message, /storage: range .* found object size/)
      return true
    })
    assert.ok(Buffer.from(await file.read(0, 4096)).equals(data.subarray(0, 4096)), 'other frames still read')
    await file.close()
  })
})
