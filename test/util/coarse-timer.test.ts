/**
 * The shared low-resolution timer behind hedging, on a fake clock (node:test mock timers): never
 * early, at most a tick late, cancellable, idle when empty.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CoarseTimer } from '../../src/util/coarse-timer.ts'

test('entries fire after their delay (within one tick), cancelled ones never; the tick stops when empty', (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 })
  const timer = new CoarseTimer(10, () => Date.now())
  const fired: [string, number][] = []
  timer.after(30, () => fired.push(['a', Date.now()]))
  const b = timer.after(30, () => fired.push(['b', Date.now()]))
  timer.after(60, () => {
    throw new Error('a throwing callback does not stop the others')
  })
  timer.after(70, () => fired.push(['c', Date.now()]))
  b.cancel()
  b.cancel()
  assert.equal(timer.size, 3)
  t.mock.timers.tick(29)
  assert.deepEqual(fired, [], 'never early')
  t.mock.timers.tick(1)
  assert.deepEqual(fired, [['a', 30]], 'on the first tick at or past its time')
  t.mock.timers.tick(39)
  assert.deepEqual(fired, [['a', 30]], 'c not before 70')
  t.mock.timers.tick(1)
  assert.deepEqual(fired, [['a', 30], ['c', 70]], 'the throwing entry at 60 did not stop c')
  assert.equal(timer.size, 0)
  // Re-arms after going idle, and an entry between ticks fires at most one tick late.
  let again = -1
  t.mock.timers.tick(3) // now 73: off the tick grid of the next interval
  timer.after(5, () => (again = Date.now()))
  t.mock.timers.tick(9)
  assert.equal(again, -1, 'the first tick of the new interval is at 83, the entry is due at 78: not yet at 82')
  t.mock.timers.tick(1)
  assert.equal(again, 83, 'fired at the first tick past its time: 5 ms late, under one tick')
  assert.equal(timer.size, 0)
})
