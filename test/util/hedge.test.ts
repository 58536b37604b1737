/**
 * The one hedged race, on a fake clock: who is started when, who wins, who is aborted.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CoarseTimer } from '../../src/util/coarse-timer.ts'
import { type HedgeResult, type HedgeRun, hedgedRace } from '../../src/util/hedge.ts'

/** Candidates whose answers the test settles by hand. */
function controlled() {
  const runs: { run: HedgeRun; settle: (r: HedgeResult<string>) => void }[] = []
  const attempt = (run: HedgeRun) => new Promise<HedgeResult<string>>((settle) => runs.push({ run, settle }))
  return { runs, attempt }
}

const flush = () => new Promise((r) => setImmediate(r))

test('a silent candidate gets the next one started after hedgeMs; the first answer wins and aborts the rest', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 })
  const timer = new CoarseTimer(10, () => Date.now())
  const c = controlled()
  const race = hedgedRace({ count: 3, hedgeMs: 100, timer, supersede: () => new Error('lost'), attempt: c.attempt })
  assert.equal(c.runs.length, 1)
  t.mock.timers.tick(90)
  assert.equal(c.runs.length, 1, 'not before the hedge delay')
  t.mock.timers.tick(10)
  assert.equal(c.runs.length, 2)
  assert.equal(c.runs[1].run.hedge, true)
  c.runs[1].settle({ won: 'from 1' })
  const won = await race
  assert.equal(won?.value, 'from 1')
  assert.equal(won?.run.index, 1)
  assert.equal(c.runs[0].run.signal.aborted, true, 'the silent one is aborted')
  assert.equal((c.runs[0].run.signal.reason as Error).message, 'lost')
  assert.equal(timer.size, 0, 'no hedge left armed')
})

test('a frontier miss starts the next at once, an earlier miss beside a running later one starts nothing; a retry asked for runs once', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 })
  const timer = new CoarseTimer(10, () => Date.now())
  const c = controlled()
  const race = hedgedRace({ count: 3, hedgeMs: 100, timer, supersede: () => new Error('lost'), attempt: c.attempt })
  t.mock.timers.tick(100) // 0 silent: 1 hedged in
  assert.equal(c.runs.length, 2)
  c.runs[0].settle({ miss: true })
  await flush()
  assert.equal(c.runs.length, 2, '1 still runs and covers 0')
  c.runs[1].settle({ miss: true, retry: true })
  await flush()
  assert.equal(c.runs.length, 3)
  assert.deepEqual([c.runs[2].run.index, c.runs[2].run.retry], [1, true], 'the same candidate once more')
  c.runs[2].settle({ miss: true, retry: true })
  await flush()
  assert.equal(c.runs.length, 4)
  assert.deepEqual([c.runs[3].run.index, c.runs[3].run.retry], [2, false], 'no second retry: the next candidate')
  c.runs[3].settle({ miss: true })
  assert.equal(await race, undefined, 'every candidate missed')
})

test('the caller aborting rejects with its reason and aborts every attempt; no candidates is undefined', async () => {
  const timer = new CoarseTimer(10)
  const c = controlled()
  const ctl = new AbortController()
  const race = hedgedRace({ count: 2, hedgeMs: Number.POSITIVE_INFINITY, timer, signal: ctl.signal, supersede: () => new Error('lost'), attempt: c.attempt })
  const reason = new Error('caller left')
  ctl.abort(reason)
  await assert.rejects(race, (err) => err === reason)
  assert.equal(c.runs[0].run.signal.aborted, true)
  c.runs[0].settle({ won: 'too late' }) // ignored
  assert.equal(await hedgedRace({ count: 0, hedgeMs: 1, timer, supersede: () => null, attempt: c.attempt }), undefined)
  await assert.rejects(hedgedRace({ count: 1, hedgeMs: 1, timer, signal: ctl.signal, supersede: () => null, attempt: c.attempt }), (err) => err === reason)
})
