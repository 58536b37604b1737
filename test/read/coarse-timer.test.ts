/** The shared low-resolution timer behind hedging: never early, at most a tick late, cancellable, idle when empty. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CoarseTimer } from '../../src/read/coarse-timer.ts'
import { sleep } from './helpers.ts'

test('entries fire after their delay (within one tick), cancelled ones never; the tick stops when empty', async () => {
  const timer = new CoarseTimer(10)
  const fired: [string, number][] = []
  const t0 = performance.now()
  timer.after(30, () => fired.push(['a', performance.now() - t0]))
  const b = timer.after(30, () => fired.push(['b', performance.now() - t0]))
  timer.after(60, () => {
    throw new Error('a throwing callback does not stop the others')
  })
  timer.after(70, () => fired.push(['c', performance.now() - t0]))
  b.cancel()
  b.cancel()
  assert.equal(timer.size, 3)
  await sleep(150)
  assert.deepEqual(fired.map(([n]) => n), ['a', 'c'])
  assert.ok(fired[0][1] >= 30 && fired[1][1] >= 70, `never early: ${JSON.stringify(fired)}`)
  assert.equal(timer.size, 0)
  // Re-arms after going idle.
  let again = false
  timer.after(5, () => (again = true))
  await sleep(40)
  assert.ok(again)
})
