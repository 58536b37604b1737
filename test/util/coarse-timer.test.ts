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

test('a watched entry fires once, on the first tick that finds it idle for over stallMs; progress keeps it alive', (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 })
  const timer = new CoarseTimer(10, () => Date.now())
  let stalls = 0
  const item = { lastActivity: 0, stallMs: 25, stalled: () => stalls++ }
  const watch = timer.watch(item)
  t.mock.timers.tick(20)
  item.lastActivity = Date.now() // progress at 20: now due only after 45
  t.mock.timers.tick(20)
  assert.equal(stalls, 0, 'idle 20 ms at 40: not stalled')
  t.mock.timers.tick(10)
  assert.equal(stalls, 1, 'idle 30 ms at 50: stalled on that tick')
  assert.equal(timer.size, 0, 'fired entries leave the timer')
  t.mock.timers.tick(100)
  assert.equal(stalls, 1, 'once')
  watch.cancel()
  // stop() pauses the tick but keeps entries: they are checked again once a new entry re-arms it.
  const quiet = { lastActivity: Date.now(), stallMs: 5, stalled: () => stalls++ }
  timer.watch(quiet)
  timer.stop()
  t.mock.timers.tick(50)
  assert.equal(stalls, 1, 'no tick after stop()')
  const later = timer.after(1000, () => {})
  t.mock.timers.tick(10)
  assert.equal(stalls, 2, 'the kept entry fired on the first tick after re-arming')
  later.cancel()
  assert.equal(timer.size, 0)
})
