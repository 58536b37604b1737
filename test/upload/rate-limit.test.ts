/** The upload rate limiter on a fake clock (node:test mock timers): waits are counted in clock ticks, never measured. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RateLimiter } from '../../src/upload/rate-limit.ts'

const MiB = 1024 * 1024

/** Runs queued promise callbacks: mocked timers fire only on tick(), so nothing else moves meanwhile. */
async function flush(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve()
}

test('rate limiter: a one-second burst is free, then each MiB at 4 MiB/s waits exactly 250 ms of clock', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
  const limiter = new RateLimiter(4 * MiB, () => Date.now())
  let done = 0
  const takes = Array.from({ length: 6 }, () => limiter.take(MiB).then(() => done++))
  // [clock moved by, takes done after it]: each step moves the mocked clock, then counts.
  const steps: [number, number, string][] = [
    [0, 4, 'the 4 MiB burst goes at once; the fifth MiB waits for tokens'],
    [249, 4, 'not before 250 ms of clock'],
    [1, 5, 'the fifth MiB after 250 ms'],
    [249, 5, 'the sixth waits its own 250 ms'],
    [1, 6, 'the sixth after 500 ms'],
  ]
  for (const [ms, expected, what] of steps) {
    t.mock.timers.tick(ms)
    await flush()
    assert.equal(done, expected, what)
  }
  await Promise.all(takes)
})

test('rate limiter: 0 is unlimited; an aborted wait gives its bytes back to the next caller', async (t) => {
  assert.ok(new RateLimiter(0).unlimited)
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
  const limiter = new RateLimiter(MiB, () => Date.now())
  await limiter.take(MiB) // the burst
  const ac = new AbortController()
  const waiting = limiter.take(MiB, ac.signal)
  await flush()
  ac.abort(new Error('cancelled'))
  await assert.rejects(waiting, /cancelled/)
  let done = false
  const next = limiter.take(MiB).then(() => {
    done = true
  })
  t.mock.timers.tick(999)
  await flush()
  assert.equal(done, false, 'one MiB at 1 MiB/s: a whole second of clock, the aborted MiB not counted')
  t.mock.timers.tick(1)
  await next
  assert.equal(done, true)
})
