/** EarlyFrames: frames that came with a header, held for the read that asked, within its bounds. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createRegistry } from '../../src/obs/metrics.ts'
import type { FrameRef } from '../../src/read/source.ts'
import { EarlyFrames } from '../../src/read/sources/early-frames.ts'

const ref = (startC: number, sizeC = 10): FrameRef => ({ buildId: '11111111-2222-4333-8444-555555555555', kind: 'memfile', codec: 'zstd', startU: startC * 4, sizeU: sizeC * 4, startC, sizeC })

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

test('bounded: by count, by bytes (oldest dropped first) and by age', () => {
  let now = 0
  const registry = createRegistry()
  const early = new EarlyFrames({ maxFrames: 2, maxBytes: 25, ttlMs: 1000, now: () => now, registry })
  early.put(ref(0), new Uint8Array(10), 'p')
  early.put(ref(10), new Uint8Array(10), 'p')
  early.put(ref(20), new Uint8Array(10), 'p') // third: the oldest goes
  assert.equal(early.size, 2)
  assert.equal(early.take(ref(0)), undefined)
  early.put(ref(30, 20), new Uint8Array(20), 'p') // 20 + 10 + 10 > 25: both older ones go
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
