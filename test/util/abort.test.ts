/**
 * The one abort race, the one deadline and the interruptible sleep: each rejects with the signal's
 * reason, leaves no abort listener behind and clears its timer.
 */
import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { test } from 'node:test'
import { abortReason, raceAbort, sleep, withDeadline } from '../../src/util/abort.ts'

test('raceAbort settles with the promise, or rejects with the reason at once; onAbort runs; no listener is left', async () => {
  const ctl = new AbortController()
  assert.equal(await raceAbort(Promise.resolve(7), ctl.signal), 7)
  await assert.rejects(raceAbort(Promise.reject(new Error('own failure')), ctl.signal), /own failure/)
  assert.equal(getEventListeners(ctl.signal, 'abort').length, 0, 'listeners removed after settling')
  let cut = 0
  const never = new Promise<number>(() => {})
  const waiting = raceAbort(never, ctl.signal, () => cut++)
  assert.equal(getEventListeners(ctl.signal, 'abort').length, 1)
  const reason = new Error('caller gave up')
  ctl.abort(reason)
  await assert.rejects(waiting, (err) => err === reason)
  assert.equal(cut, 1)
  // Already aborted: rejects at once, the promise's later failure is observed (no unhandled rejection).
  let late!: (e: Error) => void
  const failing = new Promise<number>((_, reject) => (late = reject))
  await assert.rejects(raceAbort(failing, ctl.signal, () => cut++), (err) => err === reason)
  late(new Error('after the caller left'))
  assert.equal(cut, 2)
  assert.equal(await raceAbort(Promise.resolve('no signal'), undefined), 'no signal')
})

test('abortReason: an Error reason as is, anything else an AbortError', () => {
  const ctl = new AbortController()
  ctl.abort('a string')
  const err = abortReason(ctl.signal)
  assert.ok(err instanceof Error)
  assert.equal(err.name, 'AbortError')
  const t = new Error('x')
  const ctl2 = new AbortController()
  ctl2.abort(t)
  assert.equal(abortReason(ctl2.signal), t)
})

test('sleep resolves after its delay, rejects with the reason as soon as the signal fires, and clears its timer', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  let done = false
  const p = sleep(100).then(() => (done = true))
  t.mock.timers.tick(99)
  await Promise.resolve()
  assert.equal(done, false, 'not early')
  t.mock.timers.tick(1)
  await p
  assert.equal(done, true)
  const ctl = new AbortController()
  const interrupted = sleep(60_000, ctl.signal)
  const reason = new Error('shutting down')
  ctl.abort(reason)
  await assert.rejects(interrupted, (err) => err === reason)
  assert.equal(getEventListeners(ctl.signal, 'abort').length, 0)
  await assert.rejects(sleep(10, ctl.signal), (err) => err === reason, 'an aborted signal rejects at once')
  const ok = new AbortController()
  const slept = sleep(5, ok.signal)
  t.mock.timers.tick(5)
  await slept
  assert.equal(getEventListeners(ok.signal, 'abort').length, 0, 'the listener is removed when the sleep ends')
})

test('withDeadline fires with a TimeoutError after its delay, or with the caller signal first', async () => {
  const timed = withDeadline(undefined, 20)
  await new Promise((resolve) => timed.addEventListener('abort', resolve, { once: true }))
  assert.equal((timed.reason as Error).name, 'TimeoutError')
  const ctl = new AbortController()
  const both = withDeadline(ctl.signal, 60_000)
  const reason = new Error('caller')
  ctl.abort(reason)
  assert.equal(both.aborted, true)
  assert.equal(both.reason, reason)
})
