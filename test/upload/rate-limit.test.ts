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
  await flush()
  assert.equal(done, 4, 'the 4 MiB burst goes at once; the fifth MiB waits for tokens')
  t.mock.timers.tick(249)
  await flush()
  assert.equal(done, 4, 'not before 250 ms of clock')
  t.mock.timers.tick(1)
  await flush()
  assert.equal(done, 5, 'the fifth MiB after 250 ms')
  t.mock.timers.tick(249)
  await flush()
  assert.equal(done, 5, 'the sixth waits its own 250 ms')
  t.mock.timers.tick(1)
  await Promise.all(takes)
  assert.equal(done, 6)
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
