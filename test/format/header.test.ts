import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { compressFrameSync } from 'lz4-napi'
import { ByteWriter } from '../../src/format/bytes.ts'
import { FormatError, InvalidArgumentError, LimitError, SnapswarmError } from '../../src/errors.ts'
import { FrameTable } from '../../src/format/frame-table.ts'
import { type BuildInfo, decodeHeader, encodeHeader, HEADER_LIMITS, type Header } from '../../src/format/header.ts'
import { type Mapping, NIL_BUILD_ID } from '../../src/format/types.ts'
import { randomBuildId } from '../../src/format/uuid.ts'

const K = 4096
const [A, B, C] = [randomBuildId(), randomBuildId(), randomBuildId()]

function info(buildId: string, frames: FrameTable, fileSize = frames.uncompressedSize): BuildInfo {
  return { buildId, fileSize, sha256: new Uint8Array(32).fill(7), frames }
}

function sample(overrides: Partial<Header> = {}): Header {
  const mappings: Mapping[] = [
    { offset: 0, length: 4 * K, buildId: A, buildStorageOffset: 0 },
    { offset: 4 * K, length: 2 * K, buildId: B, buildStorageOffset: 0 },
    { offset: 6 * K, length: 2 * K, buildId: NIL_BUILD_ID, buildStorageOffset: 0 },
    // hole [8K, 10K): zeros
    { offset: 10 * K, length: 2 * K, buildId: A, buildStorageOffset: 6 * K },
    { offset: 12 * K, length: 4 * K, buildId: C, buildStorageOffset: 0 },
  ]
  const builds = new Map<string, BuildInfo>([
    [A, info(A, FrameTable.fromSizes('zstd', [4, 4].map((n) => ({ sizeU: n * K, sizeC: 100 * n }))))],
    [B, info(B, new FrameTable('none', []), 2 * K)],
    // C absent: an unknown ancestor stays unknown
  ])
  return { version: 4, blockSize: K, size: 16 * K, generation: 3, buildId: B, baseBuildId: A, incomplete: false, builds, mappings, ...overrides }
}

/** Assembles V4 bytes around a hand-made body, so hostile bodies reach the body parser. */
function v4Bytes(body: Uint8Array, declared = body.byteLength, flags = 0): Uint8Array {
  const w = new ByteWriter()
  w.u64(4).u64(K).u64(16 * K).u64(0).uuid(A).uuid(A).u8(flags).u32(declared)
  return w.bytes(compressFrameSync(Buffer.from(body), { contentChecksum: true, blockChecksums: true })).finish()
}

describe('header round trips', () => {
  it('V4 with holes, nil mappings, raw and absent ancestors round-trips', () => {
    const h = sample()
    const back = decodeHeader(encodeHeader(h))
    assert.deepEqual(back.mappings, h.mappings)
    assert.deepEqual([...back.builds.keys()].sort(), [A, B].sort())
    assert.equal(back.builds.has(C), false, 'absent ancestor is not invented as raw')
    assert.deepEqual(back.builds.get(A)?.frames.frames, h.builds.get(A)?.frames.frames)
    assert.equal(back.builds.get(B)?.frames.codec, 'none')
    assert.deepEqual(encodeHeader(back), encodeHeader(h))
  })

  it('the incomplete flag round-trips; V3 and V4 with no mappings read as e2b reads them: the whole file, in 4 KiB pages, from the build itself', () => {
    const back = decodeHeader(encodeHeader(sample({ incomplete: true })))
    assert.equal(back.incomplete, true)
    assert.deepEqual(back.mappings, sample().mappings)
    for (const h of [sample({ version: 3, builds: new Map(), mappings: [] }), sample({ mappings: [], builds: new Map() }), sample({ version: 1, size: 5 * K + 1, builds: new Map(), mappings: [] })]) {
      const read = decodeHeader(encodeHeader(h))
      assert.equal(read.version, h.version)
      assert.deepEqual(read.mappings, [{ offset: 0, length: Math.ceil(h.size / K) * K, buildId: h.buildId, buildStorageOffset: 0 }])
    }
    const empty = decodeHeader(encodeHeader(sample({ version: 3, size: 0, builds: new Map(), mappings: [] })))
    assert.deepEqual(empty.mappings, [], 'an empty file keeps no mapping')
  })

  it('decoded headers are frozen: readers share them', () => {
    const h = decodeHeader(encodeHeader(sample()))
    assert.throws(() => (h.mappings as Mapping[]).push(h.mappings[0]), TypeError)
    assert.throws(() => {
      ;(h.mappings[0] as { length: number }).length = 1
    }, TypeError)
    assert.throws(() => {
      ;(h as { size: number }).size = 1
    }, TypeError)
  })

  it('the encoder trims tables to the frames mappings touch', () => {
    const h = sample()
    const full = FrameTable.fromSizes('zstd', [4, 4, 4, 4].map((n) => ({ sizeU: n * K, sizeC: 100 })))
    h.builds.set(A, info(A, full))
    assert.equal(decodeHeader(encodeHeader(h)).builds.get(A)?.frames.frames.length, 2)
  })
})

describe('the same validation on encode and decode', () => {
  const A0 = (m: Partial<Mapping>): Mapping => ({ offset: 0, length: K, buildId: A, buildStorageOffset: 0, ...m })
  const invalid: [string, Header][] = [
    ['unsorted', sample({ mappings: [A0({ offset: K }), A0({})] })],
    ['overlapping', sample({ mappings: [A0({ length: 2 * K }), A0({ offset: K })] })],
    ['beyond size', sample({ mappings: [A0({ offset: 15 * K, length: 2 * K })] })],
    ['empty mapping', sample({ mappings: [A0({ length: 0 })] })],
    ['uncovered compressed bytes', sample({ mappings: [A0({ buildStorageOffset: 7 * K, length: 2 * K })] })],
    ['codec none with frames', sample({ builds: new Map([[B, info(B, FrameTable.fromSizes('none', [{ sizeU: K, sizeC: K }]))]]) })],
    ['V3 with builds', sample({ version: 3 })],
    ['V3 incomplete', sample({ version: 3, builds: new Map(), incomplete: true })],
    ['zero block size', sample({ blockSize: 0 })],
    ['frame size 0', sample({ builds: new Map([[A, info(A, new FrameTable('zstd', [{ startU: 0, startC: 0, sizeU: 0, sizeC: 1 }]))]]) })],
  ]
  for (const [what, h] of invalid) {
    it(`${what}: refused on encode, and the same bytes refused on decode`, () => {
      assert.throws(() => encodeHeader(h), (err: unknown) => err instanceof InvalidArgumentError || err instanceof FormatError)
      const bytes = encodeUnchecked(h)
      if (bytes !== undefined) assert.throws(() => decodeHeader(bytes), FormatError, what)
    })
  }

  it('regression: unknown flag bits were refused: reads the version as e2b does (u64 & 0xFFFF), refuses versions other than 1-5, and ignores unknown flag bits', () => {
    const good = encodeHeader(sample())
    for (const v of [0, 6, 0xffff]) {
      const bad = Uint8Array.from(good)
      new DataView(bad.buffer).setUint16(0, v, true)
      assert.throws(() => decodeHeader(bad), { name: 'FormatError', message: new RegExp(`version: expected 1 to 5 in the low 16 bits, found ${v} at offset 0`) })
    }
    const high = Uint8Array.from(good)
    new DataView(high.buffer).setUint32(4, 0xdead_beef, true)
    high[2] = 0x01
    assert.equal(decodeHeader(high).version, 4, 'bits above the low 16 are not part of the version')
    assert.deepEqual(encodeHeader(decodeHeader(high)), good, 'and are written back as zero')
    const flags = Uint8Array.from(good)
    flags[64] = 0xfe
    const h = decodeHeader(flags)
    assert.equal(h.incomplete, false, 'bit 0 clear: complete; bits 1-7 ignored')
    assert.deepEqual(encodeHeader(h), good)
  })

  it('checks the declared body length before decompressing (LimitError, no allocation)', () => {
    const w = new ByteWriter()
    w.u64(4).u64(K).u64(0).u64(0).uuid(A).uuid(A).u8(0).u32(HEADER_LIMITS.maxBodyBytes + 1)
    assert.throws(() => decodeHeader(w.finish()), LimitError)
    assert.throws(() => decodeHeader(v4Bytes(new Uint8Array(8), 4)), FormatError, 'declared length differs')
  })

  it('the encoder applies the read limits too, before writing anything', () => {
    // A sparse array: the count alone must be refused, without touching the (absent) elements.
    const tooMany = new Array<Mapping>(Math.floor(HEADER_LIMITS.maxBodyBytes / 40) + 1)
    assert.throws(() => encodeHeader(sample({ mappings: tooMany })), LimitError)
    assert.throws(() => encodeHeader(sample({ version: 3, builds: new Map(), mappings: tooMany })), LimitError)
  })

  it('counts from the body are checked against the bytes that remain', () => {
    const hugeBuilds = new ByteWriter().u32(0xffff_ffff).u32(0).finish()
    assert.throws(() => decodeHeader(v4Bytes(hugeBuilds)), { name: 'FormatError', message: /4294967295 builds/ })
    const hugeMappings = new ByteWriter().u32(0).u32(0x1000_0000).finish()
    assert.throws(() => decodeHeader(v4Bytes(hugeMappings)), FormatError)
    const tooManyFrames = new ByteWriter().u32(1).uuid(A).i64(0).bytes(new Uint8Array(32)).u32(1).u32(1_048_577).u32(0).finish()
    assert.throws(() => decodeHeader(v4Bytes(tooManyFrames)), LimitError)
    const unsortedBuilds = new ByteWriter().u32(2)
    for (const id of ['ffffffff-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000001']) {
      unsortedBuilds.uuid(id).i64(0).bytes(new Uint8Array(32)).u32(0).u32(0)
    }
    assert.throws(() => decodeHeader(v4Bytes(unsortedBuilds.u32(0).finish())), /sorted after/)
    const trailing = new ByteWriter().u32(0).u32(0).u8(1).finish()
    // Bytes after the mappings must be the raw-digest trailer, introduced by its magic.
    assert.throws(() => decodeHeader(v4Bytes(trailing)), /digest trailer magic: expected 4 bytes, found 1 bytes left/)
    const notTrailer = new ByteWriter().u32(0).u32(0).u32(0xdeadbeef).finish()
    assert.throws(() => decodeHeader(v4Bytes(notTrailer)), /digest trailer magic: expected 0x44525353/)
  })

  it('every error is a named SnapswarmError with a code', () => {
    try {
      decodeHeader(new Uint8Array(5))
      assert.fail('expected an error')
    } catch (err) {
      assert.ok(err instanceof SnapswarmError)
      assert.equal(err.code, 'ERR_FORMAT')
      assert.match(err.message, /version: expected 8 bytes, found 5 bytes left at offset 0/)
    }
  })
})

/** The bytes an unvalidated encoder would write (independent of encodeHeader), or undefined. */
function encodeUnchecked(h: Header): Uint8Array | undefined {
  const w = new ByteWriter()
  const mapping = (m: Mapping) => w.u64(m.offset).u64(m.length).uuid(m.buildId).u64(m.buildStorageOffset)
  w.u64(h.version).u64(h.blockSize).u64(h.size).u64(h.generation).uuid(h.buildId).uuid(h.baseBuildId)
  if (h.version === 3) {
    if (h.incomplete || h.builds.size > 0) return undefined // not expressible in V3
    h.mappings.forEach(mapping)
    return w.finish()
  }
  const body = new ByteWriter().u32(h.builds.size)
  for (const b of [...h.builds.values()].sort((x, y) => (x.buildId < y.buildId ? -1 : 1))) {
    body.uuid(b.buildId).i64(b.fileSize).bytes(b.sha256).u32({ none: 0, zstd: 1, lz4: 2 }[b.frames.codec]).u32(b.frames.frames.length)
    for (const f of b.frames.frames) body.i64(f.startU).i64(f.startC).i32(f.sizeU).i32(f.sizeC)
  }
  body.u32(h.mappings.length)
  for (const m of h.mappings) body.u64(m.offset).u64(m.length).uuid(m.buildId).u64(m.buildStorageOffset)
  const bytes = body.finish()
  w.u8(h.incomplete ? 1 : 0).u32(bytes.byteLength)
  return w.bytes(compressFrameSync(Buffer.from(bytes), { contentChecksum: true, blockChecksums: true })).finish()
}
