/** The reply buffer pool: exact-size reuse, its byte bound, and buffers of other sizes dropped first when full. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ReplyBuffers } from '../../src/nbd/reply-buffers.ts'

test('a buffer given back is taken again for the same size only; small ones are never kept', () => {
  const pool = new ReplyBuffers(1 << 20)
  const a = pool.take(8192)
  pool.give(a)
  assert.notEqual(pool.take(8193), a)
  assert.equal(pool.take(8192), a)
  assert.notEqual(pool.take(8192), a, 'taken once, it is out of the pool')
  const small = pool.take(100)
  pool.give(small)
  assert.notEqual(pool.take(100), small)
})

test('the pool keeps at most its bound, dropping other sizes to make room', () => {
  const pool = new ReplyBuffers(3 * 65536)
  const olds = [pool.take(65536), pool.take(65536), pool.take(65536)]
  for (const b of olds) pool.give(b)
  const big = pool.take(131072)
  pool.give(big) // two 64 KiB buffers go to make room
  assert.equal(pool.take(131072), big)
  const kept = pool.take(65536)
  assert.ok(olds.includes(kept), 'one 64 KiB buffer stayed')
  assert.ok(!olds.includes(pool.take(65536)), 'the others were dropped')
  const huge = pool.take(4 << 20)
  pool.give(huge) // larger than the whole bound: never kept
  assert.notEqual(pool.take(4 << 20), huge)
})
