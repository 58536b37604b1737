/** The node-wide budget of response buffers: room, order, refusal, abort, reuse, metrics. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createRegistry } from '../../src/obs/metrics.ts'
import { BusyError, type Lease, ResponseBudget } from '../../src/api/response-budget.ts'

const KiB = 1024

function budget(opts: Partial<ConstructorParameters<typeof ResponseBudget>[0]> = {}) {
  const registry = createRegistry()
  const b = new ResponseBudget({ maxBytes: 64 * KiB, maxWaiting: 4, waitMs: 60_000, chunkBytes: 32 * KiB, registry, ...opts })
  const value = async (name: string, labels = ''): Promise<number> => {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name)
    return (m?.values ?? []).filter((v) => JSON.stringify(v.labels).includes(labels)).reduce((s, v) => s + Number(v.value), 0)
  }
  return { b, value }
}

const never = new AbortController().signal

test('leases within the budget are granted at once; beyond it they wait first come, first served, and a release lets them in', async () => {
  const { b, value } = budget()
  const a = await b.acquire(32 * KiB, never, true)
  const c = await b.acquire(32 * KiB, never, true)
  assert.equal(b.bytesInUse, 64 * KiB)
  assert.equal(await value('snapswarm_http_response_bytes'), 64 * KiB)
  const order: string[] = []
  const noted = (name: string) => (l: Lease) => {
    order.push(name)
    return l
  }
  const big = b.acquire(32 * KiB, never, true).then(noted('big'))
  const small = b.acquire(1 * KiB, never, true).then(noted('small'))
  assert.equal(b.waiting, 2)
  assert.equal(b.fitsNow(1), false, 'someone waits: nobody jumps the queue')
  a.release()
  a.release() // twice: no effect
  const lb = await big
  assert.equal(b.waiting, 1, 'the small lease does not fit beside the two big ones yet')
  c.release()
  const ls = await small
  assert.deepEqual(order, ['big', 'small'], 'the small lease did not overtake the big one ahead of it')
  assert.equal(b.bytesInUse, 33 * KiB)
  for (const l of [lb, ls]) l.release()
  assert.equal(b.bytesInUse, 0)
  assert.equal(await value('snapswarm_http_reads_waiting'), 0)
})

test('a read that has not answered is refused when the queue is full or its wait runs out; one already streaming only waits', async () => {
  const { b, value } = budget({ maxWaiting: 1, waitMs: 50 })
  const held = [await b.acquire(32 * KiB, never, true), await b.acquire(32 * KiB, never, true)]
  const streaming = b.acquire(32 * KiB, never, false) // waits: no timer, no queue limit for it
  const full = await b.acquire(32 * KiB, never, true).catch((e: unknown) => e)
  assert.ok(full instanceof BusyError && full.code === 'ERR_BUSY' && full.retryAfterSec >= 1, String(full))
  assert.equal(await value('snapswarm_http_reads_refused_total', 'queue_full'), 1)
  held[0].release() // the streaming read gets in
  const s = await streaming
  const late = await b.acquire(32 * KiB, never, true).catch((e: unknown) => e)
  assert.ok(late instanceof BusyError, `waited past waitMs: refused (${String(late)})`)
  assert.equal(await value('snapswarm_http_reads_refused_total', 'wait_timeout'), 1)
  assert.equal(b.waiting, 0, 'the refused read left the queue')
  s.release()
  held[1].release()
  assert.equal(b.bytesInUse, 0)
})

test('a client that goes away leaves the queue at once, and the one behind it gets its room', async () => {
  const { b } = budget()
  const held = await b.acquire(32 * KiB, never, true)
  const held2 = await b.acquire(16 * KiB, never, true)
  const gone = new AbortController()
  const first = b.acquire(32 * KiB, gone.signal, true).catch((e: unknown) => e)
  const second = b.acquire(16 * KiB, never, true)
  assert.equal(b.waiting, 2)
  gone.abort(new Error('client gone'))
  assert.equal(((await first) as Error).message, 'client gone')
  const l = await second // 48 + 16 fit once the 32 KiB read ahead of it left
  assert.equal(b.waiting, 0)
  assert.equal(b.bytesInUse, 64 * KiB)
  for (const x of [held, held2, l]) x.release()
  await assert.rejects(b.acquire(1, gone.signal, true), /client gone/, 'an aborted signal gets nothing')
  assert.equal(b.bytesInUse, 0)
})

test('full-chunk buffers are reused; a lease is never bigger than the chunk or the budget', async () => {
  const { b } = budget()
  const a: Lease = await b.acquire(32 * KiB, never, true)
  const buf = a.buf
  a.release()
  const again = await b.acquire(32 * KiB, never, true)
  assert.equal(again.buf, buf, 'the same pooled buffer')
  again.release()
  assert.equal((await b.acquire(100, never, true)).buf.byteLength, 100)
  await assert.rejects(b.acquire(32 * KiB + 1, never, true), { code: 'ERR_INVALID_ARGUMENT' })
  assert.equal(new ResponseBudget({ maxBytes: 4 * KiB, maxWaiting: 1, waitMs: 1, chunkBytes: 32 * KiB }).chunkBytes, 4 * KiB)
})
