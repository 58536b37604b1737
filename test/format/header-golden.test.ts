/**
 * Golden bytes for V3 and V4, written field by field from the layout (docs/FORMAT.md) with a DataView: the expected
 * bytes never come from the encoder under test.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { describe, it } from 'node:test'
import { compressFrameSync, decompressFrameSync } from 'lz4-napi'
import { FrameTable } from '../../src/format/frame-table.ts'
import { type BuildInfo, decodeHeader, encodeHeader, type Header } from '../../src/format/header.ts'
import { NIL_BUILD_ID } from '../../src/format/types.ts'
import { Golden } from './helpers.ts'

const ID_A = 'a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf'
const ID_B = 'b0b1b2b3-b4b5-b6b7-b8b9-babbbcbdbebf'
const ID_C = 'c0c1c2c3-c4c5-c6c7-c8c9-cacbcccdcecf'
const RAW: Record<string, number[]> = {
  [ID_A]: Array.from({ length: 16 }, (_, i) => 0xa0 + i),
  [ID_B]: Array.from({ length: 16 }, (_, i) => 0xb0 + i),
  [ID_C]: Array.from({ length: 16 }, (_, i) => 0xc0 + i),
  [NIL_BUILD_ID]: new Array(16).fill(0),
}
const SHA_C = Uint8Array.from({ length: 32 }, (_, i) => i)

const MAPPINGS = [
  { offset: 0x0000, length: 0x2000, buildId: ID_A, buildStorageOffset: 0 },
  { offset: 0x2000, length: 0x1000, buildId: NIL_BUILD_ID, buildStorageOffset: 0 },
  { offset: 0x3000, length: 0x1000, buildId: ID_C, buildStorageOffset: 0 },
  { offset: 0x4000, length: 0x1000, buildId: ID_B, buildStorageOffset: 0x1000 },
]

function metadata(g: Golden, version: number): void {
  g.u64(version) // version
  g.u64(4096) // blockSize
  g.u64(0x5000) // size
  g.u64(2) // generation
  g.raw(RAW[ID_C]) // buildId
  g.raw(RAW[ID_A]) // baseBuildId
}

function mappings(g: Golden): void {
  for (const m of MAPPINGS) {
    g.u64(m.offset)
    g.u64(m.length)
    g.raw(RAW[m.buildId])
    g.u64(m.buildStorageOffset)
  }
}

function header(version: 3 | 4, builds: BuildInfo[], incomplete = false): Header {
  return {
    version,
    blockSize: 4096,
    size: 0x5000,
    generation: 2,
    buildId: ID_C,
    baseBuildId: ID_A,
    incomplete,
    builds: new Map(builds.map((b) => [b.buildId, b])),
    mappings: MAPPINGS,
  }
}

/** Inserted C, A, B: the encoder must sort by raw id. B's table has a frame no mapping touches. */
function v4Builds(): BuildInfo[] {
  return [
    { buildId: ID_C, fileSize: 0x1000, sha256: SHA_C, frames: new FrameTable('zstd', [{ startU: 0, startC: 0, sizeU: 0x1000, sizeC: 0x123 }]) },
    { buildId: ID_A, fileSize: 0x2000, sha256: new Uint8Array(32), frames: new FrameTable('none', []) },
    {
      buildId: ID_B,
      fileSize: 0x2000,
      sha256: new Uint8Array(32),
      frames: FrameTable.fromSizes('lz4', [
        { sizeU: 0x1000, sizeC: 0x300 },
        { sizeU: 0x1000, sizeC: 0x280 },
      ]),
    },
  ]
}

function v4Body(): Uint8Array {
  const g = new Golden(4 + (16 + 8 + 32 + 4 + 4) * 3 + 24 * 2 + 4 + 40 * 4)
  g.u32(3) // numBuilds
  // A: raw ancestor, codec 0 with n = 0
  g.raw(RAW[ID_A]).i64(0x2000).raw(new Uint8Array(32)).u32(0).u32(0)
  // B: lz4, trimmed to the one frame mapping 3 touches
  g.raw(RAW[ID_B]).i64(0x2000).raw(new Uint8Array(32)).u32(2).u32(1)
  g.i64(0x1000).i64(0x300).i32(0x1000).i32(0x280)
  // C: zstd, one frame
  g.raw(RAW[ID_C]).i64(0x1000).raw(SHA_C).u32(1).u32(1)
  g.i64(0).i64(0).i32(0x1000).i32(0x123)
  g.u32(4) // numMappings
  mappings(g)
  return g.bytes()
}

describe('golden bytes', () => {
  it('V3: metadata then 40-byte mappings to the end', () => {
    const g = new Golden(64 + 40 * 4)
    metadata(g, 3)
    mappings(g)
    const expected = g.bytes()
    assert.deepEqual(encodeHeader(header(3, [])), expected)
    assert.deepEqual(decodeHeader(expected), { ...header(3, []) })
  })

  for (const incomplete of [false, true]) {
    it(`V4 (incomplete ${incomplete}): metadata, flags u8, u32 body length, body as one LZ4 frame`, () => {
      const body = v4Body()
      const prefix = new Golden(64 + 1 + 4)
      metadata(prefix, 4)
      prefix.u8(incomplete ? 1 : 0)
      prefix.u32(body.byteLength)
      const expectedPrefix = prefix.bytes()

      const encoded = encodeHeader(header(4, v4Builds(), incomplete))
      assert.deepEqual(encoded.subarray(0, 69), expectedPrefix)
      const lz4Stream = Buffer.from(encoded.subarray(69))
      assert.deepEqual(new Uint8Array(decompressFrameSync(lz4Stream)), body)
      const cli = spawnSync('lz4', ['-d', '-c'], { input: lz4Stream })
      assert.equal(cli.status, 0, String(cli.stderr))
      assert.deepEqual(new Uint8Array(cli.stdout), body, 'the stock lz4 CLI reads the body')

      // Decode bytes assembled by hand (our compressor not involved beyond lz4-napi's frame function).
      const handmade = Buffer.concat([expectedPrefix, compressFrameSync(Buffer.from(body), { contentChecksum: true, blockChecksums: true })])
      const decoded = decodeHeader(handmade)
      assert.equal(decoded.version, 4)
      assert.equal(decoded.incomplete, incomplete)
      assert.equal(decoded.buildId, ID_C)
      assert.equal(decoded.baseBuildId, ID_A)
      assert.deepEqual(decoded.mappings, MAPPINGS)
      assert.deepEqual([...decoded.builds.keys()], [ID_A, ID_B, ID_C])
      assert.deepEqual(decoded.builds.get(ID_A)?.frames, new FrameTable('none', []))
      assert.deepEqual(decoded.builds.get(ID_B)?.frames.frames, [{ startU: 0x1000, startC: 0x300, sizeU: 0x1000, sizeC: 0x280 }])
      assert.equal(decoded.builds.get(ID_C)?.frames.codec, 'zstd')
      assert.deepEqual(decoded.builds.get(ID_C)?.sha256, SHA_C)
      assert.deepEqual(encodeHeader(decoded).subarray(0, 69), expectedPrefix)
    })
  }
})
