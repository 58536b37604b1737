/** Counted pins: a key stays pinned until every pin on it is released; releases are idempotent. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PinCounts } from '../../src/util/pins.ts'

test('a key is pinned until every pin is released, each release counts once and calls onRelease once', () => {
  const pins = new PinCounts<string>()
  let released = 0
  const a = pins.pin('b1', () => released++)
  const b = pins.pin('b1', () => released++)
  pins.add('b2')
  assert.equal(pins.has('b1'), true)
  a()
  a()
  assert.equal(released, 1, 'a second call of the same release does nothing')
  assert.equal(pins.has('b1'), true, 'one pin left')
  b()
  assert.equal(pins.has('b1'), false)
  assert.equal(released, 2)
  pins.remove('b2')
  pins.remove('b2')
  assert.equal(pins.has('b2'), false, 'removing past zero leaves the key unpinned')
  pins.add('b2')
  assert.equal(pins.has('b2'), true, 'and a later pin counts from zero')
})
