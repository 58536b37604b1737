/** EarlyFrames: frames that came with a header, held for the read that asked, within its bounds. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createRegistry } from '../../src/obs/metrics.ts'
import type { FrameRef } from '../../src/read/source.ts'
import { EarlyFrames } from '../../src/read/sources/early-frames.ts'
import { verifyFrame } from '../../src/read/verify.ts'
import { getCodec } from '../../src/format/codec.ts'
import { CorruptFrameError } from '../../src/errors.ts'
import { flipByte, frameData, newId, refOf, vmData } from './helpers.ts'

const ref = (startC: number, sizeC = 10): FrameRef => ({ buildId: '11111111-2222-4333-8444-555555555555', kind: 'memfile', codec: 'zstd', startU: startC, sizeU: sizeC, startC, sizeC })

test('a held frame is taken once, with who sent it; another frame, codec or size is not it', () => {
  const early = new EarlyFrames()
  early.put(ref(0), new Uint8Array(10).fill(7), 'peer-a')
  assert.equal(early.take({ ...ref(0), codec: 'lz4' }), undefined)
  assert.equal(early.take(ref(10)), undefined)
  const got = early.take(ref(0))
  assert.deepEqual(got, { bytes: new Uint8Array(10).fill(7), peer: 'peer-a' })
  assert.equal(early.take(ref(0)), undefined, 'taken once')
})

test('bytes of another length than the frame are never held', () => {
  const early = new EarlyFrames()
  early.put(ref(0, 10), new Uint8Array(9), 'peer-a')
  assert.equal(early.size, 0)
})

test('bounded: by count, by bytes (stored plus decoded; oldest dropped first) and by age', () => {
  let now = 0
  const registry = createRegistry()
  const early = new EarlyFrames({ maxFrames: 2, maxBytes: 50, ttlMs: 1000, now: () => now, registry })
  early.put(ref(0), new Uint8Array(10), 'p')
  early.put(ref(10), new Uint8Array(10), 'p')
  early.put(ref(20), new Uint8Array(10), 'p') // third: the oldest goes
  assert.equal(early.size, 2)
  assert.equal(early.take(ref(0)), undefined)
  early.put(ref(30, 20), new Uint8Array(20), 'p') // (20 + 20) + (10 + 10) + (10 + 10) > 50: both older ones go
  assert.equal(early.size, 1)
  assert.ok(early.take(ref(30, 20)))
  early.put(ref(40), new Uint8Array(10), 'p')
  now = 1001
  assert.equal(early.take(ref(40)), undefined, 'expired')
  assert.equal(early.stats.taken, 1)
  assert.equal(early.stats.dropped, 4)
  early.put(ref(50, 30), new Uint8Array(30), 'p') // larger than the byte cap: not held at all
  assert.equal(early.size, 0)
})

/** Counts the zstd codec's decodes while `fn` runs. */
async function countingDecodes<T>(fn: (count: () => number) => Promise<T>): Promise<T> {
  const codec = getCodec('zstd') as { decompress: (src: Uint8Array, sizeU: number) => Promise<Uint8Array> }
  const original = codec.decompress
  let n = 0
  codec.decompress = (src, sizeU) => {
    n++
    return original.call(codec, src, sizeU)
  }
  try {
    return await fn(() => n)
  } finally {
    codec.decompress = original
  }
}

test('a held frame is decoded once, ahead: the fetch verifying the taken bytes gets that result; bad bytes still fail; another geometry is decoded anew', async () => {
  const f = await frameData('zstd', vmData(3 * 64 * 1024, 5), 64 * 1024)
  const id = newId()
  const good = refOf(id, 'memfile', f.table, 0)
  const bad = refOf(id, 'memfile', f.table, 1)
  const stored = (r: FrameRef) => Buffer.from(f.stored.subarray(r.startC, r.startC + r.sizeC))
  const source = vmData(3 * 64 * 1024, 5)
  await countingDecodes(async (decodes) => {
    const early = new EarlyFrames()
    early.put(good, stored(good), 'peer-a')
    assert.equal(decodes(), 1, 'decoding started when the frame was held')
    const taken = early.take(good)!
    assert.deepEqual(Buffer.from(await verifyFrame(good, taken.bytes)), source.subarray(good.startU, good.startU + good.sizeU))
    assert.equal(decodes(), 1, 'not decoded a second time')
    // Verified again later (another fetch of the same bytes): the early result was taken once.
    await verifyFrame(good, taken.bytes)
    assert.equal(decodes(), 2)

    const flipped = flipByte(stored(bad))
    early.put(bad, flipped, 'peer-a')
    await assert.rejects(verifyFrame(bad, early.take(bad)!.bytes), CorruptFrameError)

    const other = stored(good)
    early.put(good, other, 'peer-a')
    const before = decodes()
    // The same bytes asked as another frame (a different decoded size): the early result does not count.
    await assert.rejects(verifyFrame({ ...good, sizeU: good.sizeU - 4096 }, early.take(good)!.bytes), CorruptFrameError)
    assert.equal(decodes(), before + 1)
  })
})
