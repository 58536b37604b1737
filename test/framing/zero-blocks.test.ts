/**
 * Zero blocks as holes while framing (src/framing/holes.ts, frameFile's `zeroBlock`): on real files with
 * real codecs, the stored stream is exactly the input's non-zero blocks in order, the holes are
 * exactly its zero blocks, frames are full except the last, the hashes and a raw build's chunk
 * digests describe the stored bytes, and the push's counting pass (scanSource) agrees with the framer.
 * Every stored byte is compared with the source.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { getCodec } from '../../src/format/codec.ts'
import { InvalidArgumentError } from '../../src/errors.ts'
import type { ByteRange } from '../../src/format/frame-table.ts'
import type { CodecName } from '../../src/format/types.ts'
import { frameFile, type FramingResult } from '../../src/framing/framer.ts'
import { dropZeroBlocks, HoleList, isZero, splitDirty, zeroBlockFor } from '../../src/framing/holes.ts'
import { scanSource } from '../../src/upload/claim.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'

const K4 = 4096
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const hex = (d: Uint8Array) => Buffer.from(d).toString('hex')

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-zeros-'))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

let n = 0
async function frameBytes(src: Buffer, codec: CodecName, frameSize: number, zeroBlock: number | undefined, workers = 2): Promise<FramingResult & { frames: { stored: Uint8Array; sizeU: number }[] }> {
  const path = join(dir, `in${n++}`)
  await writeFile(path, src)
  const fh = await open(path, 'r')
  const frames: { stored: Uint8Array; sizeU: number }[] = []
  try {
    const r = await frameFile(fh, { codec, frameSize, workers, zeroBlock }, async (stored, sizeU) => {
      frames.push({ stored: Uint8Array.from(stored), sizeU })
    })
    return { ...r, frames }
  } finally {
    await fh.close()
  }
}

/** The model: blocks of `block` bytes; a zero block whose length is a whole number of pages is a hole. */
function model(src: Buffer, block: number): { stored: Buffer; holes: ByteRange[] } {
  const kept: Buffer[] = []
  const holes: { start: number; end: number }[] = []
  for (let p = 0; p < src.byteLength; p += block) {
    const b = src.subarray(p, Math.min(p + block, src.byteLength))
    if (b.byteLength % K4 === 0 && b.every((x) => x === 0)) {
      const last = holes[holes.length - 1]
      if (last && last.end === p) last.end = p + b.byteLength
      else holes.push({ start: p, end: p + b.byteLength })
    } else kept.push(b)
  }
  return { stored: Buffer.concat(kept), holes }
}

/** VM-like pages (zero pages ~45%), plus long zero runs and a zero run across a frame boundary. */
function input(size: number, seed: number): Buffer {
  const b = new VmDataGenerator(seed, 45).next(Math.ceil(size / K4) * K4).subarray(0, size)
  b.fill(0, Math.min(3 * K4, size), Math.min(40 * K4, size)) // a run of zero pages longer than a frame
  return b
}

async function decodeAll(r: Awaited<ReturnType<typeof frameBytes>>, codec: CodecName): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for (const f of r.frames) parts.push(codec === 'none' ? f.stored : await getCodec(codec).decompress(f.stored, f.sizeU))
  return Buffer.concat(parts)
}

describe('frameFile with zeroBlock', () => {
  for (const codec of ['zstd', 'lz4', 'none'] as const) {
    for (const [block, frameSize] of [
      [K4, 16 * K4],
      [4 * K4, 8 * K4],
    ]) {
      test(`${codec}, block ${block}, frame ${frameSize}: stored = non-zero blocks, holes = zero blocks, hashes and digests of the stored bytes`, async () => {
        for (const size of [0, K4, 5 * K4, 100 * K4 + 100, 203 * K4]) {
          const src = input(size, size + block)
          const want = model(src, block)
          const r = await frameBytes(src, codec, frameSize, block)
          const stored = await decodeAll(r, codec)
          const what = `size ${size}`
          assert.ok(stored.equals(want.stored), `${what}: the stored stream is the non-zero blocks in order`)
          assert.deepEqual(r.holes, want.holes, `${what}: holes`)
          assert.equal(r.size, size)
          assert.equal(r.storedSize, want.stored.byteLength)
          assert.equal(hex(r.sha256), sha(want.stored), `${what}: sha256 covers the stored bytes`)
          assert.equal(hex(r.sourceSha256), sha(src), `${what}: sourceSha256 covers the input`)
          for (const [i, f] of r.frames.slice(0, -1).entries()) assert.equal(f.sizeU, frameSize, `${what}: frame ${i} is full`)
          assert.equal(r.table.frames.length, r.frames.length)
          if (codec === 'none') {
            assert.equal(r.digests?.count, r.frames.length)
            for (const [i, f] of r.frames.entries()) assert.equal(hex(r.digests!.digestOf(i)), sha(f.stored), `${what}: digest of chunk ${i}`)
          }
        }
      })
    }
  }

  test('without zeroBlock nothing is left out; sha256 and sourceSha256 are the same', async () => {
    const src = input(50 * K4, 3)
    const r = await frameBytes(src, 'zstd', 16 * K4, undefined)
    assert.deepEqual(r.holes, [])
    assert.equal(r.storedSize, src.byteLength)
    assert.ok((await decodeAll(r, 'zstd')).equals(src))
    assert.equal(hex(r.sha256), sha(src))
    assert.equal(hex(r.sourceSha256), sha(src))
  })

  test('an all-zero file stores nothing: no frame, one hole over the whole file', async () => {
    const r = await frameBytes(Buffer.alloc(64 * K4), 'lz4', 16 * K4, K4, 1)
    assert.equal(r.frames.length, 0)
    assert.equal(r.storedSize, 0)
    assert.deepEqual(r.holes, [{ start: 0, end: 64 * K4 }])
  })

  test('a zero tail shorter than a page is stored: every hole is whole pages', async () => {
    const src = input(10 * K4 + 100, 9)
    src.fill(0, 9 * K4)
    const r = await frameBytes(src, 'zstd', 4 * K4, K4)
    assert.equal(r.holes.at(-1)?.end, 10 * K4, 'the last hole ends before the partial page')
    assert.equal(r.storedSize + r.holes.reduce((n, h) => n + h.end - h.start, 0), src.byteLength)
    assert.ok((await decodeAll(r, 'zstd')).subarray(-100).equals(Buffer.alloc(100)))
    for (const h of r.holes) assert.ok(h.start % K4 === 0 && h.end % K4 === 0)
  })

  test('a zero block size that is not whole pages, or does not divide the frame size, is refused before reading', async () => {
    const path = join(dir, 'refused')
    await writeFile(path, Buffer.alloc(K4))
    const fh = await open(path, 'r')
    try {
      for (const zeroBlock of [512, 3 * K4, 6000]) {
        await assert.rejects(frameFile(fh, { codec: 'zstd', frameSize: 16 * K4, workers: 1, zeroBlock }, async () => {}), InvalidArgumentError)
      }
    } finally {
      await fh.close()
    }
    assert.equal(zeroBlockFor(512, 16 * K4), undefined)
    assert.equal(zeroBlockFor(2 * 1024 * 1024, 2 * 1024 * 1024), 2 * 1024 * 1024)
    assert.equal(zeroBlockFor(8 * K4, 12 * K4), undefined)
  })

  test("scanSource counts exactly the bytes the framer stores (the push's metadata is known before its first part)", async () => {
    for (const [size, block] of [
      [300 * K4 + 7, K4],
      [64 * K4, 16 * K4],
    ]) {
      const src = input(size, size)
      const path = join(dir, `scan${size}`)
      await writeFile(path, src)
      const fh = await open(path, 'r')
      try {
        const scan = await scanSource(fh, block)
        const r = await frameBytes(src, 'zstd', 16 * K4, block)
        assert.equal(scan.storedSize, r.storedSize)
        assert.equal(hex(scan.sha256), sha(src))
        const plain = await scanSource(fh, undefined)
        assert.equal(plain.storedSize, size)
      } finally {
        await fh.close()
      }
    }
  })
})

describe('holes', () => {
  test('isZero: every position of a non-zero byte is seen, for small and large blocks', () => {
    for (const len of [1, 2, 3, 4, 4096, 65536]) {
      const b = Buffer.alloc(len)
      assert.ok(isZero(b))
      for (const at of new Set([0, 1, len >> 1, len - 2, len - 1, len >> 3])) {
        if (at < 0 || at >= len) continue
        b[at] = 1
        assert.equal(isZero(b), false, `len ${len}: byte ${at}`)
        b[at] = 0
      }
    }
    assert.ok(isZero(new Uint8Array(0)))
  })

  test('HoleList: adjacent holes join; past its bound zero blocks are kept (stored), deterministically', () => {
    const holes = new HoleList(2)
    const chunk = Buffer.alloc(8 * K4)
    chunk.fill(1, K4, 2 * K4)
    chunk.fill(1, 3 * K4, 4 * K4)
    // zero blocks: 0, 2, 4-7 → holes [0,1) [2,3) then the list is full: blocks 4..7 are kept.
    const kept = dropZeroBlocks(chunk, 0, K4, holes, true)
    assert.deepEqual(holes.ranges, [
      { start: 0, end: K4 },
      { start: 2 * K4, end: 3 * K4 },
    ])
    assert.equal(kept, 6 * K4)
    assert.equal(holes.bytes, 2 * K4)
    assert.ok(chunk.subarray(0, K4).every((x) => x === 1) && chunk.subarray(K4, 2 * K4).every((x) => x === 1))
  })

  test('splitDirty: holes of the packed diff become nil ranges at their virtual place, also across two dirty ranges', () => {
    const dirty = [
      { start: 0, end: 4 * K4 },
      { start: 10 * K4, end: 12 * K4 },
      { start: 12 * K4, end: 13 * K4 },
    ]
    // packed: [0,4K) ← [0,4), [4K,6K) ← [10,12), [6K,7K) ← [12,13)
    const holes = [
      { start: K4, end: 2 * K4 },
      { start: 3 * K4, end: 5 * K4 },
      { start: 6 * K4, end: 7 * K4 },
    ]
    const r = splitDirty(dirty, holes)
    assert.deepEqual(r.empty, [
      { start: K4, end: 2 * K4 },
      { start: 3 * K4, end: 4 * K4 },
      { start: 10 * K4, end: 11 * K4 },
      { start: 12 * K4, end: 13 * K4 },
    ])
    assert.deepEqual(r.dirty, [
      { start: 0, end: K4 },
      { start: 2 * K4, end: 3 * K4 },
      { start: 11 * K4, end: 12 * K4 },
    ])
    assert.deepEqual(splitDirty(dirty, []), { dirty, empty: [] })
  })
})
