import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RateLimiter } from '../../src/upload/rate-limit.ts'

test('rate limiter: sustained throughput follows the configured rate after the first burst', async () => {
  const limiter = new RateLimiter(4 * 1024 * 1024) // 4 MiB/s
  const t0 = performance.now()
  // 4 MiB burst (free) + 2 MiB more must take ≈ 0.5 s.
  for (let i = 0; i < 6; i++) await limiter.take(1024 * 1024)
  const secs = (performance.now() - t0) / 1000
  assert.ok(secs >= 0.4, `6 MiB at 4 MiB/s with a 4 MiB burst took ${secs.toFixed(3)} s, expected ≥ 0.4`)
  assert.ok(new RateLimiter(0).unlimited)
})
