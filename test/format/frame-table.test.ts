import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { FormatError, InvalidArgumentError, LimitError } from '../../src/errors.ts'
import { FrameTable, MAX_FRAMES_PER_TABLE } from '../../src/format/frame-table.ts'
import type { Frame } from '../../src/format/types.ts'
import { randInt, rng } from './helpers.ts'

const MiB = 1024 * 1024

/** 2 MiB frames over a 9 MiB file: the last frame is 1 MiB. */
function table(): FrameTable {
  return FrameTable.fromSizes('zstd', [
    { sizeU: 2 * MiB, sizeC: 500 },
    { sizeU: 2 * MiB, sizeC: 700 },
    { sizeU: 2 * MiB, sizeC: 100 },
    { sizeU: 2 * MiB, sizeC: 900 },
    { sizeU: 1 * MiB, sizeC: 50 },
  ])
}

describe('FrameTable', () => {
  it('builds absolute offsets from emitted sizes', () => {
    const t = table()
    assert.deepEqual(t.frames[1], { startU: 2 * MiB, startC: 500, sizeU: 2 * MiB, sizeC: 700 })
    assert.deepEqual(t.frames[4], { startU: 8 * MiB, startC: 2200, sizeU: MiB, sizeC: 50 })
    assert.equal(t.uncompressedSize, 9 * MiB)
    assert.equal(t.compressedSize, 2250)
    assert.ok(Object.isFrozen(t.frames) && Object.isFrozen(t.frames[0]))
  })

  it('finds the frame holding an offset (first byte, last byte, past the end)', () => {
    const t = table()
    assert.equal(t.indexOf(0), 0)
    assert.equal(t.indexOf(2 * MiB - 1), 0)
    assert.equal(t.indexOf(2 * MiB), 1)
    assert.equal(t.indexOf(9 * MiB - 1), 4)
    assert.equal(t.indexOf(9 * MiB), -1)
    assert.equal(t.indexOf(-1), -1)
    assert.equal(t.frameAt(5 * MiB).startC, 1200)
    assert.throws(() => t.frameAt(9 * MiB), InvalidArgumentError)
  })

  it('frameStartingAt rejects mid-frame offsets instead of rounding down', () => {
    const t = table()
    assert.equal(t.frameStartingAt(4 * MiB).startC, 1200)
    assert.throws(() => t.frameStartingAt(4 * MiB + 4096), { name: 'InvalidArgumentError', message: /mid-frame offset 4198400/ })
    assert.throws(() => t.frameStartingAt(9 * MiB), InvalidArgumentError)
  })

  it('framesForRange returns every frame a range touches and refuses gaps', () => {
    const t = table()
    assert.deepEqual(
      t.framesForRange(2 * MiB - 1, 2 * MiB + 2).map((f) => f.startU),
      [0, 2 * MiB, 4 * MiB],
    )
    assert.deepEqual(t.framesForRange(0, 0), [])
    assert.throws(() => t.framesForRange(8 * MiB, 2 * MiB), InvalidArgumentError)
    const gapped = t.trim([{ start: 0, end: 1 }, { start: 6 * MiB, end: 6 * MiB + 1 }])
    assert.throws(() => gapped.framesForRange(0, 7 * MiB), /gap at 2097152/)
  })

  it('lookups agree with a linear scan on random gapped tables', () => {
    const r = rng(7)
    for (let round = 0; round < 50; round++) {
      const frames: Frame[] = []
      let u = randInt(r, 0, 10)
      let c = 0
      for (let i = 0; i < randInt(r, 0, 40); i++) {
        const sizeU = randInt(r, 1, 20)
        frames.push({ startU: u, startC: c, sizeU, sizeC: randInt(r, 1, 9) })
        u += sizeU + (r() < 0.3 ? randInt(r, 1, 15) : 0)
        c += frames[frames.length - 1].sizeC + (r() < 0.2 ? 3 : 0)
      }
      const t = new FrameTable('lz4', frames)
      t.validate()
      for (let off = -2; off < u + 5; off++) {
        const linear = frames.findIndex((f) => off >= f.startU && off < f.startU + f.sizeU)
        assert.equal(t.indexOf(off), linear)
      }
    }
  })

  it('trim keeps exactly the frames some range touches, ranges in any order', () => {
    const t = table()
    const kept = t.trim([
      { start: 8 * MiB + 5, end: 8 * MiB + 6 },
      { start: 2 * MiB - 1, end: 2 * MiB },
      { start: 100, end: 200 },
      { start: 3 * MiB, end: 3 * MiB }, // empty: touches nothing
    ])
    assert.deepEqual(
      kept.frames.map((f) => f.startU),
      [0, 8 * MiB],
    )
    assert.equal(kept.codec, 'zstd')
    assert.equal(t.frames.length, 5, 'trim does not mutate')
    assert.deepEqual(t.trim([{ start: 0, end: 9 * MiB }]).frames, t.frames)
    kept.validate()
  })

  it('validate enforces the format limits', () => {
    const ok = { startU: 0, startC: 0, sizeU: 10, sizeC: 5 }
    const bad: [string, Frame[]][] = [
      ['zero sizeU', [{ ...ok, sizeU: 0 }]],
      ['zero sizeC', [{ ...ok, sizeC: 0 }]],
      ['sizeU over i32', [{ ...ok, sizeU: 2 ** 31 }]],
      ['negative start', [{ ...ok, startU: -1 }]],
      ['overlapping U', [ok, { startU: 9, startC: 5, sizeU: 10, sizeC: 5 }]],
      ['not increasing C', [ok, { startU: 10, startC: 4, sizeU: 10, sizeC: 5 }]],
      ['equal starts', [ok, { ...ok }]],
      ['fractional', [{ ...ok, startU: 0.5 }]],
    ]
    for (const [what, frames] of bad) assert.throws(() => new FrameTable('zstd', frames).validate(), FormatError, what)
    new FrameTable('zstd', [ok, { startU: 50, startC: 99, sizeU: 1, sizeC: 1 }]).validate() // gaps are legal
    assert.throws(() => FrameTable.fromSizes('lz4', [{ sizeU: 0, sizeC: 1 }]), InvalidArgumentError)
  })

  it('validate refuses more than 2^20 frames; lookups stay fast at the limit', () => {
    const sizes = Array.from({ length: MAX_FRAMES_PER_TABLE }, () => ({ sizeU: 4096, sizeC: 100 }))
    const t = FrameTable.fromSizes('zstd', sizes)
    // Count the frames each lookup looks at: a binary search over 2^20 frames looks at ≤ 21.
    let looked = 0
    const frames = t.frames
    const counted = new Proxy(frames, {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) looked++
        return Reflect.get(target, key, receiver)
      },
    })
    Object.defineProperty(t, 'frames', { value: counted })
    let most = 0
    for (let i = 0; i < 100_000; i++) {
      looked = 0
      const offset = i * 40_000
      const index = t.indexOf(offset)
      most = Math.max(most, looked)
      assert.equal(index, Math.floor(offset / 4096), `offset ${offset}`)
    }
    assert.ok(most <= 21, `a lookup looked at ${most} frames: binary search looks at ≤ log2(2^20) + 1`)
    Object.defineProperty(t, 'frames', { value: frames })
    const over = new FrameTable('zstd', [...t.frames, { startU: 2 ** 32, startC: 2 ** 30, sizeU: 1, sizeC: 1 }])
    assert.throws(() => over.validate(), LimitError)
  })
})
