import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { InvalidArgumentError } from '../../src/errors.ts'
import { type ByteRange, FrameTable } from '../../src/format/frame-table.ts'
import { type BuildInfo, decodeHeader, encodeHeader, type Header } from '../../src/format/header.ts'
import { layerHeader, resolve, singleLayerHeader } from '../../src/format/mapping.ts'
import { type CodecName, NIL_BUILD_ID } from '../../src/format/types.ts'
import { randomBuildId } from '../../src/format/uuid.ts'
import { randInt, rng } from './helpers.ts'

const K = 4096

/** A data file of `fileSize` bytes framed every `frameBlocks` blocks (fake compressed sizes). */
function buildInfo(buildId: string, fileSize: number, codec: CodecName, frameBlocks = 3): BuildInfo {
  const sizes = []
  for (let u = 0; u < fileSize; u += frameBlocks * K) {
    const sizeU = Math.min(frameBlocks * K, fileSize - u)
    sizes.push({ sizeU: codec === 'none' ? sizeU : sizeU, sizeC: codec === 'none' ? sizeU : (sizeU >> 2) + 17 })
  }
  return { buildId, fileSize, sha256: new Uint8Array(32), frames: codec === 'none' ? new FrameTable('none', []) : FrameTable.fromSizes(codec, sizes) }
}

/** Blocks → sorted ranges of consecutive blocks. */
function toRanges(blocks: number[]): ByteRange[] {
  const out: ByteRange[] = []
  for (const b of blocks) {
    const last = out[out.length - 1]
    if (last !== undefined && last.end === b * K) out[out.length - 1] = { start: last.start, end: (b + 1) * K }
    else out.push({ start: b * K, end: (b + 1) * K })
  }
  return out
}

interface Cell {
  buildId: string
  storage: number
}

/** Every virtual byte resolves as the byte-level model says, and compressed bytes have frames. */
function checkAgainstModel(h: Header, model: Cell[]): void {
  for (let b = 0; b < model.length; b++) {
    for (const d of [0, 1, K - 1]) {
      const r = resolve(h, b * K + d)
      const want = model[b]
      assert.equal(r.buildId, want.buildId, `block ${b}+${d}`)
      if (want.buildId !== NIL_BUILD_ID) assert.equal(r.storageOffset, want.storage + d, `block ${b}+${d} storage`)
      assert.ok(r.remaining >= K - d && b * K + d + r.remaining <= h.size)
      // The whole run the answer claims is one build, contiguous in storage.
      const lastBlock = Math.floor((b * K + d + r.remaining - 1) / K)
      for (let c = b + 1; c <= lastBlock; c++) {
        assert.equal(model[c].buildId, want.buildId, `run from block ${b} into ${c}`)
        if (want.buildId !== NIL_BUILD_ID) assert.equal(model[c].storage, want.storage + (c - b) * K)
      }
      const table = h.builds.get(r.buildId)?.frames
      if (table !== undefined && table.codec !== 'none' && d === 0) {
        assert.doesNotThrow(() => table.framesForRange(r.storageOffset, K), `block ${b} of ${r.buildId} has frames`)
      }
    }
  }
  // Tables hold only frames some mapping touches.
  for (const [id, info] of h.builds) {
    for (const f of info.frames.frames) {
      const touched = h.mappings.some((m) => m.buildId === id && m.buildStorageOffset < f.startU + f.sizeU && f.startU < m.buildStorageOffset + m.length)
      assert.ok(touched, `frame ${f.startU} of ${id} is used`)
    }
  }
}

/** A chain of `layers` builds over `blocks` blocks with random dirty/empty blocks and codecs. */
function chain(seed: number, blocks: number, layers: number, baseCodec: CodecName): void {
  const r = rng(seed)
  const codecs: CodecName[] = ['lz4', 'none', 'zstd', 'lz4', 'zstd', 'none']
  const base = randomBuildId()
  let h = singleLayerHeader({ buildId: base, kind: 'rootfs', info: buildInfo(base, blocks * K, baseCodec) })
  const model: Cell[] = Array.from({ length: blocks }, (_, b) => ({ buildId: base, storage: b * K }))
  checkAgainstModel(h, model)
  for (let layer = 1; layer < layers; layer++) {
    const id = randomBuildId()
    const dirty: number[] = []
    const empty: number[] = []
    for (let b = 0; b < blocks; b++) {
      const x = r()
      if (x < 0.2) dirty.push(b)
      else if (x < 0.28) empty.push(b)
    }
    dirty.forEach((b, i) => {
      model[b] = { buildId: id, storage: i * K }
    })
    for (const b of empty) model[b] = { buildId: NIL_BUILD_ID, storage: 0 }
    const parentBytes = encodeHeader(h)
    const parentMappings = JSON.stringify(h.mappings)
    const codec = codecs[(seed + layer) % codecs.length]
    const child = layerHeader(h, { buildId: id, dirty: toRanges(dirty), empty: toRanges(empty), info: buildInfo(id, dirty.length * K, codec, randInt(r, 1, 4)) })
    assert.deepEqual(encodeHeader(h), parentBytes, 'parent unchanged')
    assert.equal(JSON.stringify(h.mappings), parentMappings)
    assert.equal(child.generation, layer + 1, 'e2b: the first layer is generation 1')
    assert.equal(child.baseBuildId, base)
    checkAgainstModel(child, model)
    const back = decodeHeader(encodeHeader(child))
    assert.deepEqual(back.mappings, child.mappings)
    checkAgainstModel(back, model)
    h = child
  }
}

describe('resolve', () => {
  it('maps virtual offsets, nil mappings and holes (zeros), with bytes remaining', () => {
    const A = randomBuildId()
    const h: Header = {
      version: 3,
      blockSize: K,
      size: 10 * K,
      generation: 0,
      buildId: A,
      baseBuildId: A,
      incomplete: false,
      builds: new Map(),
      mappings: [
        { offset: 0, length: 2 * K, buildId: A, buildStorageOffset: 8 * K },
        { offset: 2 * K, length: K, buildId: NIL_BUILD_ID, buildStorageOffset: 123 },
        { offset: 5 * K, length: K, buildId: A, buildStorageOffset: 0 },
      ],
    }
    assert.deepEqual(resolve(h, 0), { buildId: A, storageOffset: 8 * K, remaining: 2 * K })
    assert.deepEqual(resolve(h, 2 * K - 1), { buildId: A, storageOffset: 10 * K - 1, remaining: 1 })
    assert.deepEqual(resolve(h, 2 * K + 5), { buildId: NIL_BUILD_ID, storageOffset: 0, remaining: K - 5 })
    assert.deepEqual(resolve(h, 3 * K), { buildId: NIL_BUILD_ID, storageOffset: 0, remaining: 2 * K }, 'hole')
    assert.deepEqual(resolve(h, 6 * K), { buildId: NIL_BUILD_ID, storageOffset: 0, remaining: 4 * K }, 'tail hole')
    assert.throws(() => resolve(h, 10 * K), InvalidArgumentError)
    assert.throws(() => resolve(h, -1), InvalidArgumentError)
  })
})

describe('singleLayerHeader', () => {
  it('one mapping over the file; V3 for raw, V4 for compressed or pending', () => {
    const id = randomBuildId()
    const raw = singleLayerHeader({ buildId: id, kind: 'memfile', info: buildInfo(id, 8 * K, 'none') })
    assert.equal(raw.version, 3)
    assert.equal(raw.blockSize, 2 * 1024 * 1024)
    assert.deepEqual(raw.mappings, [{ offset: 0, length: 8 * K, buildId: id, buildStorageOffset: 0 }])
    assert.equal(raw.baseBuildId, id)
    const z = singleLayerHeader({ buildId: id, blockSize: K, info: buildInfo(id, 8 * K + 100, 'zstd') })
    assert.equal(z.version, 4)
    assert.equal(z.builds.get(id)?.frames.frames.length, 3)
    const pending = singleLayerHeader({ buildId: id, blockSize: K, info: buildInfo(id, 8 * K, 'none'), incomplete: true })
    assert.equal(pending.version, 4)
    assert.equal(decodeHeader(encodeHeader(pending)).incomplete, true)
    assert.throws(() => singleLayerHeader({ buildId: id, info: buildInfo(id, K, 'none') }), InvalidArgumentError)
    assert.throws(() => singleLayerHeader({ buildId: id, blockSize: K, size: 5, info: buildInfo(id, K, 'none') }), InvalidArgumentError)
  })
})

describe('layerHeader', () => {
  it('splits the parent around dirty and empty ranges and packs the child data in order', () => {
    const A = randomBuildId()
    const B = randomBuildId()
    const parent = singleLayerHeader({ buildId: A, blockSize: K, info: buildInfo(A, 8 * K, 'zstd', 2) })
    const child = layerHeader(parent, {
      buildId: B,
      dirty: [
        { start: K, end: 2 * K },
        { start: 5 * K, end: 7 * K },
      ],
      empty: [{ start: 3 * K, end: 4 * K }],
      info: buildInfo(B, 3 * K, 'lz4'),
    })
    assert.deepEqual(child.mappings, [
      { offset: 0, length: K, buildId: A, buildStorageOffset: 0 },
      { offset: K, length: K, buildId: B, buildStorageOffset: 0 },
      { offset: 2 * K, length: K, buildId: A, buildStorageOffset: 2 * K },
      { offset: 3 * K, length: K, buildId: NIL_BUILD_ID, buildStorageOffset: 0 },
      { offset: 4 * K, length: K, buildId: A, buildStorageOffset: 4 * K },
      { offset: 5 * K, length: 2 * K, buildId: B, buildStorageOffset: K },
      { offset: 7 * K, length: K, buildId: A, buildStorageOffset: 7 * K },
    ])
    assert.equal(child.version, 4)
    assert.equal(parent.generation, 1, 'a first layer is generation 1, as e2b stores it')
    assert.equal(child.generation, 2)
    // A's frames are 2 blocks; all four are still touched.
    assert.equal(child.builds.get(A)?.frames.frames.length, 4)
    const G = randomBuildId()
    const grandchild = layerHeader(child, { buildId: G, dirty: [{ start: K, end: 4 * K }], info: buildInfo(G, 3 * K, 'zstd') })
    assert.deepEqual(
      grandchild.mappings.map((m) => [m.offset / K, m.length / K, m.buildId === G ? 'G' : m.buildId === B ? 'B' : m.buildId === A ? 'A' : '0']),
      [[0, 1, 'A'], [1, 3, 'G'], [4, 1, 'A'], [5, 2, 'B'], [7, 1, 'A']],
    )
    assert.deepEqual(grandchild.builds.get(B)?.frames.frames.map((f) => f.startU), [0], 'B: one 3-block frame')
  })

  it('carries ancestors trimmed, drops builds no longer referenced, keeps unknown ones unknown', () => {
    const A = randomBuildId()
    const B = randomBuildId()
    const C = randomBuildId()
    const v3 = singleLayerHeader({ buildId: A, blockSize: K, info: buildInfo(A, 8 * K, 'none') })
    const b = layerHeader(v3, { buildId: B, dirty: [{ start: 0, end: 4 * K }], info: buildInfo(B, 4 * K, 'zstd', 1) })
    assert.equal(b.version, 4)
    assert.deepEqual(
      { ...b.builds.get(A), frames: b.builds.get(A)?.frames.codec },
      { buildId: A, fileSize: 0, sha256: new Uint8Array(32), frames: 'none' },
      "a V3 parent's raw layer gets e2b's empty placeholder entry (uncompressed, size unknown)",
    )
    const c = layerHeader(b, { buildId: C, dirty: [{ start: 0, end: K }], empty: [{ start: 4 * K, end: 8 * K }], info: buildInfo(C, K, 'none') })
    assert.deepEqual(
      c.builds.get(B)?.frames.frames.map((f) => f.startU),
      [K, 2 * K, 3 * K],
    )
    assert.equal(c.builds.get(C)?.frames.codec, 'none')
    const D = randomBuildId()
    const d = layerHeader(c, { buildId: D, dirty: [{ start: 0, end: 8 * K }], info: buildInfo(D, 8 * K, 'lz4') })
    assert.equal(d.builds.size, 1, 'every ancestor fully overwritten is dropped')
    assert.equal(d.baseBuildId, A)
    const raw = layerHeader(v3, { buildId: C, dirty: [{ start: 0, end: K }], info: buildInfo(C, K, 'none') })
    assert.equal(raw.version, 3, 'a raw child of a V3 parent stays V3')
  })

  it('refuses bad input: unaligned, unsorted, overlapping, wrong file size, reused id', () => {
    const A = randomBuildId()
    const B = randomBuildId()
    const p = singleLayerHeader({ buildId: A, blockSize: K, info: buildInfo(A, 8 * K + 10, 'zstd') })
    const ok = { buildId: B, info: buildInfo(B, K, 'lz4') }
    const bad: [string, ByteRange[], ByteRange[]][] = [
      ['unaligned', [{ start: 1, end: K + 1 }], []],
      ['unsorted', [{ start: 2 * K, end: 3 * K }, { start: 0, end: 0 }], []],
      ['beyond size', [{ start: 8 * K, end: 9 * K }], []],
      ['dirty/empty overlap', [{ start: 0, end: K }], [{ start: 0, end: K }]],
      ['wrong fileSize', [{ start: 0, end: 2 * K }], []],
    ]
    for (const [what, dirty, empty] of bad) assert.throws(() => layerHeader(p, { ...ok, dirty, empty }), InvalidArgumentError, what)
    assert.ok(layerHeader(p, { ...ok, info: buildInfo(B, 10, 'lz4'), dirty: [{ start: 8 * K, end: 8 * K + 10 }] }), 'unaligned file end')
    assert.throws(() => layerHeader(p, { ...ok, buildId: A, info: buildInfo(A, K, 'lz4'), dirty: [{ start: 0, end: K }] }), InvalidArgumentError)
    assert.throws(() => layerHeader(p, { ...ok, buildId: NIL_BUILD_ID, info: buildInfo(NIL_BUILD_ID, K, 'lz4'), dirty: [{ start: 0, end: K }] }), InvalidArgumentError)
  })

  for (const baseCodec of ['zstd', 'none', 'lz4'] as const) {
    it(`random chains of 6 builds over a ${baseCodec} base match a byte-level model`, () => {
      for (let seed = 1; seed <= 8; seed++) chain(seed * 31 + baseCodec.length, 96, 6, baseCodec)
    })
  }

  it('is linear: 100,000 parent mappings split by 25,000 dirty ranges in seconds, not hours', () => {
    const A = randomBuildId()
    const blocks = 100_000
    const parent = singleLayerHeader({ buildId: A, blockSize: K, info: buildInfo(A, blocks * K, 'zstd', 1) })
    const every = (n: number, phase: number) => Array.from({ length: blocks / n }, (_, i) => i * n + phase)
    const B = randomBuildId()
    const mid = layerHeader(parent, { buildId: B, dirty: toRanges(every(2, 1)), info: buildInfo(B, (blocks / 2) * K, 'zstd', 1) })
    assert.equal(mid.mappings.length, blocks)
    const C = randomBuildId()
    // Count the parent's mappings and dirty ranges the layering looks at: linear means a few looks per
    // element; a lookup per dirty range over all mappings would pass the bound at once and stop there.
    const dirty = toRanges(every(4, 2))
    const bound = 8 * (mid.mappings.length + dirty.length)
    let looked = 0
    const counted = <T extends object>(items: T): T =>
      new Proxy(items, {
        get(target, key, receiver) {
          if (typeof key === 'string' && /^\d+$/.test(key) && ++looked > bound) throw new Error(`more than ${bound} element reads: not linear`)
          return Reflect.get(target, key, receiver)
        },
      })
    const top = layerHeader({ ...mid, mappings: counted(mid.mappings) }, { buildId: C, dirty: counted(dirty), info: buildInfo(C, (blocks / 4) * K, 'lz4', 1) })
    assert.ok(looked > 0 && looked <= bound, `${looked} element reads for ${mid.mappings.length} mappings and ${dirty.length} dirty ranges`)
    assert.equal(top.builds.get(A)?.frames.frames.length, blocks / 4)
  })
})
