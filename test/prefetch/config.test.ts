/** prefetch.* in the configuration: defaults, and bad values refused naming the key. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { validateConfig } from '../../src/config/load.ts'

test('prefetch settings default to on, 8 slots, a 4 GiB budget, a 60 s window and 65,536 entries', () => {
  assert.deepEqual(validateConfig({}).prefetch, {
    enabled: true,
    record: true,
    concurrency: 8,
    budgetBytes: 4 * 1024 * 1024 * 1024,
    recordWindowMs: 60_000,
    maxEntries: 65_536,
  })
  assert.equal(validateConfig({ prefetch: { enabled: false } }).prefetch.enabled, false)
  assert.equal(validateConfig({ prefetch: { enabled: false } }).prefetch.record, true)
})

test('bad prefetch values are refused with ERR_CONFIG naming the key', () => {
  for (const [value, key] of [
    [{ concurrency: 0 }, 'prefetch.concurrency'],
    [{ maxEntries: 262_145 }, 'prefetch.maxEntries'],
    [{ recordWindowMs: -1 }, 'prefetch.recordWindowMs'],
    [{ budget: 1 }, 'prefetch.budget'],
  ] as const) {
    assert.throws(() => validateConfig({ prefetch: value }), (err: Error & { code?: string }) => err.code === 'ERR_CONFIG' && err.message.includes(key), key)
  }
})
