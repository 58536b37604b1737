/**
 * Golden bytes for the header versions e2b-dev/infra has written besides plain V3/V4 (those are in
 * header-golden.test.ts): versions 1 and 2 (V3 layout), a version field with bits above the low 16,
 * V4 without a self entry, and V5 (columnar mappings). Every expected byte is written field by field
 * from the layout in docs/FORMAT.md, never by the encoder under test; each one is then decoded, and
 * written back to the same bytes. Random derived chains round-trip through V4 and V5 alike.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { describe, it } from 'node:test'
import { compressFrameSync, decompressFrameSync } from 'lz4-napi'
import { FormatError, LimitError, SnapswarmError } from '../../src/errors.ts'
import { FrameTable } from '../../src/format/frame-table.ts'
import { type BuildInfo, decodeHeader, encodeHeader, type Header } from '../../src/format/header.ts'
import { describeLayer } from '../../src/format/layer-info.ts'
import { layerHeader, singleLayerHeader } from '../../src/format/mapping.ts'
import { type CodecName, type Mapping, NIL_BUILD_ID } from '../../src/format/types.ts'
import { randomBuildId } from '../../src/format/uuid.ts'
import { Golden, rng } from './helpers.ts'

const P = 4096
const ID_A = 'a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf'
const ID_B = 'b0b1b2b3-b4b5-b6b7-b8b9-babbbcbdbebf'
const ID_C = 'c0c1c2c3-c4c5-c6c7-c8c9-cacbcccdcecf'
const raw = (first: number) => Array.from({ length: 16 }, (_, i) => first + i)
const RAW: Record<string, number[]> = { [ID_A]: raw(0xa0), [ID_B]: raw(0xb0), [ID_C]: raw(0xc0), [NIL_BUILD_ID]: new Array(16).fill(0) }
const SHA = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i)

/** A, a nil page, C (the header's own build), B: 5 pages. */
const MAPPINGS: Mapping[] = [
  { offset: 0, length: 2 * P, buildId: ID_A, buildStorageOffset: 0 },
  { offset: 2 * P, length: P, buildId: NIL_BUILD_ID, buildStorageOffset: 0 },
  { offset: 3 * P, length: P, buildId: ID_C, buildStorageOffset: 0 },
  { offset: 4 * P, length: P, buildId: ID_B, buildStorageOffset: P },
]

function metadata(g: Golden, version: number, size = 5 * P): void {
  g.u64(version).u64(P).u64(size).u64(7).raw(RAW[ID_C]).raw(RAW[ID_A])
}

function records(g: Golden, mappings: readonly Mapping[]): void {
  for (const m of mappings) g.u64(m.offset).u64(m.length).raw(RAW[m.buildId]).u64(m.buildStorageOffset)
}

/** The V4/V5 prefix (metadata, flags, body length) then the body as one LZ4 frame, assembled by hand. */
function framed(version: number, body: Uint8Array, flags = 0, size = 5 * P): { prefix: Uint8Array; bytes: Buffer } {
  const g = new Golden(69)
  metadata(g, version, size)
  g.u8(flags).u32(body.byteLength)
  const prefix = g.bytes()
  return { prefix, bytes: Buffer.concat([prefix, compressFrameSync(Buffer.from(body), { contentChecksum: true, blockChecksums: true })]) }
}

/** Builds section: A raw (codec 0, no frames), B lz4 with the one frame B's mapping touches, and C when `self`. */
function buildsSection(self: boolean): Uint8Array {
  const n = self ? 3 : 2
  const g = new Golden(4 + 64 * n + 24 * (self ? 2 : 1))
  g.u32(n)
  g.raw(RAW[ID_A]).i64(2 * P).raw(new Uint8Array(32)).u32(0).u32(0)
  g.raw(RAW[ID_B]).i64(2 * P).raw(new Uint8Array(32)).u32(2).u32(1).i64(P).i64(0x300).i32(P).i32(0x280)
  if (self) g.raw(RAW[ID_C]).i64(P).raw(SHA).u32(1).u32(1).i64(0).i64(0).i32(P).i32(0x123)
  return g.bytes()
}

function builds(self: boolean): Map<string, BuildInfo> {
  const out = new Map<string, BuildInfo>([
    [ID_A, { buildId: ID_A, fileSize: 2 * P, sha256: new Uint8Array(32), frames: new FrameTable('none', []) }],
    [ID_B, { buildId: ID_B, fileSize: 2 * P, sha256: new Uint8Array(32), frames: FrameTable.fromSizes('lz4', [{ sizeU: P, sizeC: 0x300 }, { sizeU: P, sizeC: 0x280 }]) }],
  ])
  if (self) out.set(ID_C, { buildId: ID_C, fileSize: P, sha256: SHA, frames: new FrameTable('zstd', [{ startU: 0, startC: 0, sizeU: P, sizeC: 0x123 }]) })
  return out
}

function header(version: Header['version'], self = true, incomplete = false): Header {
  const b = version <= 3 ? new Map() : builds(self)
  return { version, blockSize: P, size: 5 * P, generation: 7, buildId: ID_C, baseBuildId: ID_A, incomplete, builds: b, mappings: MAPPINGS }
}

const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts))

describe('header versions 1 and 2 (the V3 layout, as e2b wrote until Nov 2025)', () => {
  for (const version of [1, 2] as const) {
    it(`regression: versions 1 and 2 were refused (expected 3 or 4): version ${version}: metadata then 40-byte mappings to the end; read and written back byte for byte`, () => {
      const g = new Golden(64 + 40 * 4)
      metadata(g, version)
      records(g, MAPPINGS)
      const expected = g.bytes()
      const decoded = decodeHeader(expected)
      assert.deepEqual({ ...decoded }, header(version))
      assert.deepEqual(describeLayer(decoded, ID_B), { kind: 'raw' }, 'no builds section: every layer is uncompressed')
      assert.deepEqual(encodeHeader(decoded), expected)
    })
  }

  it('the version is the low 16 bits of the u64, as e2b masks it; the upper bits are written back as zero', () => {
    const g = new Golden(64 + 40 * 4)
    g.u32(0x5a5a_0002).u32(0x0123_4567) // low 16 bits: 2
    g.u64(P).u64(5 * P).u64(7).raw(RAW[ID_C]).raw(RAW[ID_A])
    records(g, MAPPINGS)
    const decoded = decodeHeader(g.bytes())
    assert.equal(decoded.version, 2)
    const clean = new Golden(64 + 40 * 4)
    metadata(clean, 2)
    records(clean, MAPPINGS)
    assert.deepEqual(encodeHeader(decoded), clean.bytes())
  })
})

describe('V4 without a self entry (e2b pausing uncompressed on a compressed parent)', () => {
  for (const incomplete of [false, true]) {
    it(`regression: a V4 header without a self entry had no build info for its own layer: builds list only the ancestors (incomplete ${incomplete}); the own layer is ${incomplete ? 'left to its own header' : 'uncompressed at its plain name'}`, () => {
      const body = concat(buildsSection(false), u32le(4), recordBytes(MAPPINGS))
      const { prefix, bytes } = framed(4, body, incomplete ? 1 : 0)
      const decoded = decodeHeader(bytes)
      assert.deepEqual([...decoded.builds.keys()], [ID_A, ID_B])
      assert.deepEqual(decoded.mappings, MAPPINGS)
      assert.deepEqual(describeLayer(decoded, ID_C), incomplete ? { kind: 'ask-own-header' } : { kind: 'raw' })
      assert.equal(describeLayer(decoded, ID_B).kind, 'described')
      const encoded = encodeHeader(decoded)
      assert.deepEqual(encoded.subarray(0, 69), prefix)
      assert.deepEqual(new Uint8Array(decompressFrameSync(Buffer.from(encoded.subarray(69)))), body)
    })
  }

  it('an ancestor a V4 header does not describe is left to its own header, never guessed raw', () => {
    const h = decodeHeader(framed(4, concat(new Golden(4).u32(0).bytes(), u32le(4), recordBytes(MAPPINGS))).bytes)
    assert.deepEqual(describeLayer(h, ID_A), { kind: 'ask-own-header' })
    assert.deepEqual(describeLayer(h, ID_C), { kind: 'raw' })
  })
})

/**
 * V5 mapping section of MAPPINGS: ids in order of first use (A, C, B), 3 non-nil mappings (the nil
 * page is left out), then the four columns in pages: offset deltas 0, 3, 1; lengths 2, 1, 1; storage
 * deltas 0, 0, +1 (zigzag 0, 0, 2); build indices 0, 1, 2.
 */
function v5Section(): Uint8Array {
  const g = new Golden(4 + 48 + 4 + 12)
  g.u32(3).raw(RAW[ID_A]).raw(RAW[ID_C]).raw(RAW[ID_B])
  g.u32(3)
  g.raw([0, 3, 1]).raw([2, 1, 1]).raw([0, 0, 2]).raw([0, 1, 2])
  return g.bytes()
}

describe('V5: V4 framing and builds, columnar varint mappings', () => {
  for (const incomplete of [false, true]) {
    it(`regression: V5 headers were refused: golden bytes (incomplete ${incomplete}); read back with the nil page rebuilt; written back byte for byte`, () => {
      const body = concat(buildsSection(true), v5Section())
      const { prefix, bytes } = framed(5, body, incomplete ? 1 : 0)
      const encoded = encodeHeader(header(5, true, incomplete))
      assert.deepEqual(encoded.subarray(0, 69), prefix)
      const lz4Stream = Buffer.from(encoded.subarray(69))
      assert.deepEqual(new Uint8Array(decompressFrameSync(lz4Stream)), body)
      const cli = spawnSync('lz4', ['-d', '-c'], { input: lz4Stream })
      assert.equal(cli.status, 0, String(cli.stderr))
      assert.deepEqual(new Uint8Array(cli.stdout), body, 'the stock lz4 CLI reads the body')

      const decoded = decodeHeader(bytes)
      assert.deepEqual({ ...decoded, builds: [...decoded.builds.keys()] }, { ...header(5, true, incomplete), builds: [ID_A, ID_B, ID_C] })
      assert.deepEqual(decoded.builds.get(ID_B)?.frames.frames, [{ startU: P, startC: 0x300, sizeU: P, sizeC: 0x280 }])
      assert.deepEqual(encodeHeader(decoded), encoded)
    })
  }

  it('multi-byte varints, a negative storage delta, a gap and an unaligned size: gaps and the last partial page come back nil', () => {
    const size = 300 * P + 100 // 301 pages
    const g = new Golden(4 + 32 + 4 + 3 + 2 + 2 + 2)
    g.u32(2).raw(RAW[ID_B]).raw(RAW[ID_A]).u32(2)
    g.raw([0x00, 0xc8, 0x01]) // offset deltas 0, 200 (two bytes: 0xc8 0x01)
    g.raw([0x01, 0x64]) // lengths 1, 100
    g.raw([0x0e, 0x09]) // storage deltas +7 (zigzag 14), -5 (zigzag 9): pages 7 then 2
    g.raw([0x00, 0x01]) // B, A
    const buildsG = new Golden(4 + 64 * 2)
    buildsG.u32(2)
    buildsG.raw(RAW[ID_A]).i64(102 * P).raw(new Uint8Array(32)).u32(0).u32(0)
    buildsG.raw(RAW[ID_B]).i64(8 * P).raw(new Uint8Array(32)).u32(0).u32(0)
    const { bytes } = framed(5, concat(buildsG.bytes(), g.bytes()), 0, size)
    const h = decodeHeader(bytes)
    assert.deepEqual(h.mappings, [
      { offset: 0, length: P, buildId: ID_B, buildStorageOffset: 7 * P },
      { offset: P, length: 199 * P, buildId: NIL_BUILD_ID, buildStorageOffset: 0 },
      { offset: 200 * P, length: 100 * P, buildId: ID_A, buildStorageOffset: 2 * P },
      { offset: 300 * P, length: P, buildId: NIL_BUILD_ID, buildStorageOffset: 0 },
    ])
    assert.deepEqual(encodeHeader(h), new Uint8Array(bytes), 'written back byte for byte')
    // The same header as V4 (e2b's TestV5_MatchesV4Semantics): the same mappings and builds.
    const v4 = decodeHeader(encodeHeader({ ...h, version: 4 }))
    assert.deepEqual(v4.mappings, h.mappings)
    assert.deepEqual([...v4.builds.keys()], [...h.builds.keys()])
  })

  it('no mappings: the whole file (rounded up to 4 KiB) reads as zeros; an empty file has no mapping', () => {
    const empty = concat(new Golden(4).u32(0).bytes(), new Golden(8).u32(0).u32(0).bytes())
    assert.deepEqual(decodeHeader(framed(5, empty, 0, 2 * P + 1).bytes).mappings, [{ offset: 0, length: 3 * P, buildId: NIL_BUILD_ID, buildStorageOffset: 0 }])
    assert.deepEqual(decodeHeader(framed(5, empty, 0, 0).bytes).mappings, [])
  })

  it("refuses what e2b's reader refuses, each with a FormatError or LimitError naming the field", () => {
    const section = (cols: number[][], m = 2, n = cols[0].length) => {
      const g = new Golden(4 + 16 * m + 4 + cols.flat().length)
      g.u32(m)
      for (let i = 0; i < m; i++) g.raw(RAW[i === 0 ? ID_A : ID_B])
      g.u32(n)
      for (const c of cols) g.raw(c)
      return concat(new Golden(4).u32(0).bytes(), g.bytes())
    }
    const cases: [string, Uint8Array, RegExp][] = [
      ['zero length', section([[0], [0], [0], [0]]), /V5 mapping 0 length: expected at least one page/],
      ['overlap', section([[0, 0], [2, 1], [0, 0], [0, 1]]), /V5 mapping 1 offset: expected page >= 2/],
      ['end beyond the size', section([[4], [2], [0], [0]]), /V5 mapping 0 end: expected page <= 5/],
      ['build index out of range', section([[0], [1], [0], [2]]), /V5 build index 0: expected a result in \[0, 1\]/],
      ['negative storage', section([[0], [1], [1], [0]]), /V5 storage delta 0: expected a result in \[0, 4294967295\]/],
      ['count beyond the bytes left', section([[0], [1], [0], [0]], 2, 1000), /V5 mapping count: expected <= 1/],
      ['truncated varint', section([[0x80, 0x80, 0x80, 0x80]], 2, 1), /V5 offset delta 0: expected 1 bytes, found 0 bytes left/],
      ['overlong varint', section([[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], [1], [0], [0]], 2, 1), /varint of at most 10 bytes/],
    ]
    for (const [what, body, message] of cases) {
      assert.throws(() => decodeHeader(framed(5, body).bytes), (err: unknown) => err instanceof FormatError && message.test(err.message), what)
    }
    const capsM = concat(new Golden(8).u32(0).u32(0x1_0000).bytes())
    assert.throws(() => decodeHeader(framed(5, capsM).bytes), LimitError, 'more than 65,535 builds')
    const capsN = concat(new Golden(12).u32(0).u32(0).u32((8 << 20) + 1).bytes())
    assert.throws(() => decodeHeader(framed(5, capsN).bytes), LimitError, 'more than 8 Mi mappings')
    // Bytes enough for 6,391,321 mappings, one more than e2b's memory bound lets it rebuild.
    const n = Math.floor((256 << 20) / 42) + 1
    const capsMemory = concat(new Golden(12).u32(0).u32(0).u32(n).bytes(), new Uint8Array(4 * n))
    assert.throws(() => decodeHeader(framed(5, capsMemory).bytes), /V5 mapping count: expected <= 6391320 \(4 bytes each left, at most 6391320\), found 6391321/)
    // 3.4 M one-page mappings a page apart: with the gaps rebuilt, more than a V4 header may hold.
    const k = 3_400_000
    const cols = new Uint8Array(4 * k)
    cols.fill(2, 1, k) // offset deltas 0, 2, 2, …
    cols.fill(1, k, 2 * k) // lengths 1; storage deltas 0; build index 0
    const gappy = concat(new Golden(4).u32(0).bytes(), new Golden(24).u32(1).raw(RAW[ID_A]).u32(k).bytes(), cols)
    assert.throws(() => decodeHeader(framed(5, gappy, 0, 2 * k * P).bytes), (err: unknown) => err instanceof LimitError && /V5 mappings with their gaps: expected <= 6710886, found 6800000/.test(err.message))
  })

  it('the encoder refuses a V5 header whose mappings are not in whole 4 KiB pages (it has no way to write them)', () => {
    const odd = { ...header(5), size: 5 * P - 1, mappings: [...MAPPINGS.slice(0, 3), { ...MAPPINGS[3], length: P - 1 }] }
    assert.throws(() => encodeHeader(odd), (err: unknown) => err instanceof SnapswarmError && /multiples of 4096/.test(err.message))
  })
})

function u32le(v: number): Uint8Array {
  return new Golden(4).u32(v).bytes()
}

function recordBytes(mappings: readonly Mapping[]): Uint8Array {
  const g = new Golden(40 * mappings.length)
  records(g, mappings)
  return g.bytes()
}

describe('read → write round trips over derived chains', () => {
  it('random chains written as V4 and as V5 decode to the same header, and each re-encodes to its own bytes', () => {
    const r = rng(55)
    for (let seed = 0; seed < 12; seed++) {
      const size = (40 + Math.floor(r() * 40)) * P + (seed % 3 === 0 ? 0 : 1 + Math.floor(r() * (P - 1)))
      const pages = Math.ceil(size / P)
      const base = randomBuildId()
      const codecs: CodecName[] = ['zstd', 'lz4', 'none']
      const mk = (headerVersion: 4 | 5) => {
        const ids = [base]
        let h = singleLayerHeader({ buildId: base, blockSize: P, info: infoOf(base, size, codecs[seed % 3]), headerVersion })
        const rr = rng(1000 + seed)
        for (let layer = 0; layer < 4; layer++) {
          const dirty: { start: number; end: number }[] = []
          const empty: { start: number; end: number }[] = []
          for (let p = 0; p < pages; p++) {
            const x = rr()
            const range = { start: p * P, end: Math.min((p + 1) * P, size) }
            if (x < 0.15) dirty.push(range)
            else if (x < 0.2) empty.push(range)
          }
          const id = `${String(layer).padStart(8, '0')}-0000-4000-8000-${String(seed).padStart(12, '0')}`
          ids.push(id)
          const bytes = dirty.reduce((n, d) => n + d.end - d.start, 0)
          h = layerHeader(h, { buildId: id, dirty, empty, info: infoOf(id, bytes, codecs[(seed + layer) % 3]), headerVersion })
        }
        return h
      }
      const v4 = mk(4)
      const v5 = mk(5)
      const b4 = encodeHeader(v4)
      const b5 = encodeHeader(v5)
      const d4 = decodeHeader(b4)
      const d5 = decodeHeader(b5)
      assert.deepEqual(d5.mappings, d4.mappings, `seed ${seed}: the same mappings from V4 and V5`)
      assert.deepEqual([...d5.builds.keys()], [...d4.builds.keys()])
      assert.deepEqual(d5.mappings, v5.mappings, 'V5 rebuilds exactly the nil mappings it left out')
      assert.deepEqual(encodeHeader(d4), b4)
      assert.deepEqual(encodeHeader(d5), b5)
      assert.deepEqual(decodeHeader(encodeHeader({ ...d5, version: 4 })).mappings, d4.mappings, 'V5 → V4 conversion')
    }
  })
})

function infoOf(buildId: string, fileSize: number, codec: CodecName): BuildInfo {
  if (codec === 'none' || fileSize === 0) return { buildId, fileSize, sha256: new Uint8Array(32), frames: new FrameTable(codec === 'none' ? 'none' : codec, []) }
  const frame = 5 * P
  const sizes = Array.from({ length: Math.ceil(fileSize / frame) }, (_, i) => ({ sizeU: Math.min(frame, fileSize - i * frame), sizeC: 100 + i }))
  return { buildId, fileSize, sha256: new Uint8Array(32).fill(1), frames: FrameTable.fromSizes(codec, sizes) }
}
