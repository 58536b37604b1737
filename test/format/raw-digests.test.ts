/**
 * Raw builds' chunk digests: golden bytes of the V4 raw header with its digest trailer (the expected
 * bytes written field by field, never by the encoder under test), what a reader that stops after the
 * mappings (as e2b's V4 reader does) sees, validation of hostile trailers, trimming in child headers,
 * and the check on the read path.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { compressFrameSync, decompressFrameSync } from 'lz4-napi'
import { ByteWriter } from '../../src/format/bytes.ts'
import { CorruptFrameError, InvalidArgumentError, LimitError } from '../../src/errors.ts'
import { FrameTable } from '../../src/format/frame-table.ts'
import { type BuildInfo, decodeHeader, encodeHeader } from '../../src/format/header.ts'
import { layerHeader, singleLayerHeader } from '../../src/format/mapping.ts'
import { RAW_DIGESTS_MAGIC, RawDigests } from '../../src/format/raw-digests.ts'
import { verifyFrame } from '../../src/read/verify.ts'

const ID = 'a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf'
const ID_RAW = Array.from({ length: 16 }, (_, i) => 0xa0 + i)
const CHILD = 'b0b1b2b3-b4b5-b6b7-b8b9-babbbcbdbebf'
const CHUNK = 8192
const FILE_SIZE = 2 * CHUNK + 100
const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest()

/** The data, its per-chunk digests and whole-file digest, as the framer would compute them. */
function rawFile(): { data: Buffer; info: BuildInfo } {
  const data = Buffer.alloc(FILE_SIZE)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff
  const digests = Buffer.concat([0, 1, 2].map((i) => sha(data.subarray(i * CHUNK, Math.min((i + 1) * CHUNK, FILE_SIZE)))))
  return { data, info: { buildId: ID, fileSize: FILE_SIZE, sha256: sha(data), frames: new FrameTable('none', []), digests: RawDigests.fromDigests(CHUNK, digests) } }
}

/** Little-endian writer over a DataView for expected bytes only (not the ByteWriter under test). */
function golden(parts: ((v: DataView, at: number) => number)[]): Uint8Array {
  let size = 0
  const probe = new DataView(new ArrayBuffer(1 << 16))
  for (const p of parts) size = p(probe, size)
  const view = new DataView(new ArrayBuffer(size))
  let at = 0
  for (const p of parts) at = p(view, at)
  return new Uint8Array(view.buffer)
}
const u8 = (x: number) => (v: DataView, at: number) => {
  v.setUint8(at, x)
  return at + 1
}
const u32 = (x: number) => (v: DataView, at: number) => {
  v.setUint32(at, x, true)
  return at + 4
}
const u64 = (x: number) => (v: DataView, at: number) => {
  v.setBigUint64(at, BigInt(x), true)
  return at + 8
}
const raw = (b: ArrayLike<number>) => (v: DataView, at: number) => {
  for (let i = 0; i < b.length; i++) v.setUint8(at + i, b[i])
  return at + b.length
}

describe('raw build header with chunk digests', () => {
  it('golden bytes: V4, codec 0 with no frames, the whole-file SHA-256, then the digest trailer after the mappings', () => {
    const { data, info } = rawFile()
    const header = singleLayerHeader({ buildId: ID, blockSize: 4096, info })
    assert.equal(header.version, 4, 'a raw build with digests is written as V4')
    const d = [0, 1, 2].map((i) => sha(data.subarray(i * CHUNK, Math.min((i + 1) * CHUNK, FILE_SIZE))))
    const body = golden([
      u32(1), // numBuilds
      raw(ID_RAW), u64(FILE_SIZE), raw(sha(data)), u32(0), u32(0), // e2b's V4 form of an uncompressed build
      u32(1), u64(0), u64(5 * 4096), raw(ID_RAW), u64(0), // one mapping, its length the size rounded up to 4 KiB (e2b's NewHeader)
      u32(RAW_DIGESTS_MAGIC), u32(1), u32(1), // trailer: magic "SSRD", version 1, one build
      raw(ID_RAW), u32(CHUNK), u32(3),
      u32(0), raw(d[0]), u32(1), raw(d[1]), u32(2), raw(d[2]),
    ])
    assert.deepEqual([...body.subarray(4 + 64 + 4 + 40, 4 + 64 + 4 + 40 + 4)], [0x53, 0x53, 0x52, 0x44], 'the magic reads "SSRD"')
    const prefix = golden([u64(4), u64(4096), u64(FILE_SIZE), u64(1), raw(ID_RAW), raw(ID_RAW), u8(0), u32(body.byteLength)]) // generation 1: a first layer

    const encoded = encodeHeader(header)
    assert.deepEqual(encoded.subarray(0, 69), prefix)
    assert.deepEqual(new Uint8Array(decompressFrameSync(Buffer.from(encoded.subarray(69)))), body)

    const handmade = Buffer.concat([prefix, compressFrameSync(Buffer.from(body), { contentChecksum: true, blockChecksums: true })])
    const decoded = decodeHeader(handmade)
    const got = decoded.builds.get(ID)!
    assert.deepEqual(got.sha256, new Uint8Array(sha(data)))
    assert.equal(got.frames.codec, 'none')
    assert.equal(got.frames.frames.length, 0)
    assert.equal(got.digests?.chunkSize, CHUNK)
    assert.deepEqual(got.digests?.indices, [0, 1, 2])
    assert.deepEqual(got.digests?.chunkAt(2 * CHUNK + 99, FILE_SIZE), { index: 2, startU: 2 * CHUNK, sizeU: 100, sha256: new Uint8Array(d[2]) })
    assert.equal(got.digests?.chunkAt(FILE_SIZE, FILE_SIZE), undefined)
  })

  it('a reader that stops after the mappings (e2b deserializeV4 never checks the rest) sees a plain V4 raw build', () => {
    const { info } = rawFile()
    const body = Buffer.from(decompressFrameSync(Buffer.from(encodeHeader(singleLayerHeader({ buildId: ID, blockSize: 4096, info })).subarray(69))))
    // What e2b's readV4BuildsSection + mappings loop read, and nothing more.
    let at = 0
    assert.equal(body.readUInt32LE(at), 1)
    at += 4 + 16 + 8 + 32
    assert.deepEqual([body.readUInt32LE(at), body.readUInt32LE(at + 4)], [0, 0], 'codec 0 with frame count 0: e2b refuses codec 0 with frames')
    at += 8
    assert.equal(body.readUInt32LE(at), 1)
    at += 4 + 40
    assert.ok(at < body.length, 'the trailer follows')
    assert.equal(body.readUInt32LE(at), RAW_DIGESTS_MAGIC)
  })

  it('a raw build without digests is still V3, byte for byte as before; V4 headers without a trailer decode unchanged', () => {
    const { info } = rawFile()
    const { digests: _, ...legacy } = info
    const v3 = singleLayerHeader({ buildId: ID, blockSize: 4096, info: legacy })
    assert.equal(v3.version, 3)
    assert.equal(encodeHeader(v3).byteLength, 64 + 40)
    const pending = decodeHeader(encodeHeader(singleLayerHeader({ buildId: ID, blockSize: 4096, info: legacy, incomplete: true })))
    assert.equal(pending.builds.get(ID)?.digests, undefined)
  })

  it('a child header carries a raw parent\'s digests trimmed to the chunks it still maps', () => {
    const { info } = rawFile()
    const parent = decodeHeader(encodeHeader(singleLayerHeader({ buildId: ID, blockSize: 4096, info })))
    const childInfo: BuildInfo = { buildId: CHILD, fileSize: CHUNK, sha256: new Uint8Array(32), frames: new FrameTable('none', []), digests: RawDigests.fromDigests(CHUNK, sha('c')) }
    const child = decodeHeader(encodeHeader(layerHeader(parent, { buildId: CHILD, dirty: [{ start: 0, end: CHUNK }], info: childInfo })))
    assert.equal(child.version, 4)
    assert.deepEqual(child.builds.get(ID)?.digests?.indices, [1, 2], 'chunk 0 of the parent is no longer mapped')
    assert.deepEqual(child.builds.get(CHILD)?.digests?.indices, [0])
  })

  it('hostile trailers are refused before use: unknown build, compressed build, bad geometry, unsorted, outside the file, huge counts', () => {
    const { info } = rawFile()
    const base = encodeHeader(singleLayerHeader({ buildId: ID, blockSize: 4096, info }))
    const body = Buffer.from(decompressFrameSync(Buffer.from(base.subarray(69))))
    const trailerAt = 4 + (16 + 8 + 32 + 8) + 4 + 40
    const withTrailer = (t: Uint8Array) => {
      const b = Buffer.concat([body.subarray(0, trailerAt), t])
      const prefix = Buffer.from(base.subarray(0, 69))
      prefix.writeUInt32LE(b.length, 65)
      return Buffer.concat([prefix, compressFrameSync(b, { contentChecksum: true, blockChecksums: true })])
    }
    const trailer = (id: string, chunk: number, indices: number[], count = indices.length) => {
      const w = new ByteWriter().u32(RAW_DIGESTS_MAGIC).u32(1).u32(1).uuid(id).u32(chunk).u32(count)
      for (const i of indices) w.u32(i).bytes(new Uint8Array(32))
      return w.finish()
    }
    assert.throws(() => decodeHeader(withTrailer(trailer(CHILD, CHUNK, [0, 1, 2]))), /a build listed in the builds section/)
    assert.throws(() => decodeHeader(withTrailer(trailer(ID, 1000, [0, 1, 2]))), { name: 'FormatError', message: /chunk size/ })
    assert.throws(() => decodeHeader(withTrailer(trailer(ID, CHUNK, [0, 2, 1]))), { name: 'FormatError', message: /expected an index > 2/ })
    assert.throws(() => decodeHeader(withTrailer(trailer(ID, CHUNK, [0, 1, 3]))), { name: 'FormatError', message: /inside the file size/ })
    assert.throws(() => decodeHeader(withTrailer(trailer(ID, CHUNK, [0, 1]))), { name: 'FormatError', message: /covered by a chunk digest/ })
    assert.throws(() => decodeHeader(withTrailer(trailer(ID, CHUNK, [0], 0x10_0001))), LimitError)
    assert.throws(() => decodeHeader(withTrailer(trailer(ID, CHUNK, [0], 0xffff))), { name: 'FormatError', message: /65535 chunks: expected 2359260 bytes/ })
    assert.throws(() => decodeHeader(withTrailer(new ByteWriter().u32(RAW_DIGESTS_MAGIC).u32(2).finish())), /digest trailer version: expected 1, found 2/)

    const zstd: BuildInfo = { ...info, frames: FrameTable.fromSizes('zstd', [{ sizeU: FILE_SIZE, sizeC: 10 }]) }
    assert.throws(() => singleLayerHeader({ buildId: ID, blockSize: 4096, info: zstd }), { name: 'InvalidArgumentError', message: /only for a raw build/ })
  })

  it('the read path checks a chunk against its digest before using it and names it on a mismatch', async () => {
    const { data, info } = rawFile()
    const c = info.digests!.chunkAt(CHUNK, FILE_SIZE)!
    const ref = { buildId: ID, kind: 'memfile' as const, codec: 'none' as const, startU: c.startU, sizeU: c.sizeU, startC: c.startU, sizeC: c.sizeU, digest: c.sha256 }
    const good = data.subarray(CHUNK, 2 * CHUNK)
    assert.deepEqual(await verifyFrame(ref, good), good)
    const flipped = Buffer.from(good)
    flipped[100] ^= 0xff
    await assert.rejects(verifyFrame(ref, flipped), (err: unknown) => {
      assert.ok(err instanceof CorruptFrameError)
      assert.match(err.message, new RegExp(`chunk ${ID}/memfile @${CHUNK}\\+${CHUNK} .*SHA-256 mismatch: expected ${Buffer.from(c.sha256).toString('hex')}, found [0-9a-f]{64}`))
      return true
    })
  })

  it('the framer refuses a raw frame size no digest chunk can have', async () => {
    const { frameFile } = await import('../../src/framing/framer.ts')
    const { open } = await import('node:fs/promises')
    const fh = await open(new URL(import.meta.url).pathname, 'r')
    try {
      await assert.rejects(frameFile(fh, { codec: 'none', frameSize: 1536, workers: 1 }, async () => {}), InvalidArgumentError)
    } finally {
      await fh.close()
    }
  })
})
