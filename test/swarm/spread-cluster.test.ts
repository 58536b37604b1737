/**
 * Load spreading among real `snapswarm node` processes on 127.0.0.1: one origin and four readers
 * (a star: every reader bootstraps to the origin, membership connects the readers to each other)
 * read the same build at the same moment. With frame-level availability and rendezvous ownership,
 * each frame leaves the origin (pending build) or the bucket (uploaded build) about once: at most
 * 1.5x the compressed size, no reader serves more than 3x it, and every byte read is compared with
 * the source (bench/lib/swarm.ts throws on a wrong one). A reader that flips a byte in every frame
 * it serves is caught by verification and penalised, its frames fetched elsewhere.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { egressRatios, startSwarm, type Swarm, type SwarmReadResult } from '../../bench/lib/swarm.ts'

const READERS = 4
const MIB = 32

async function report(t: { diagnostic(msg: string): void }, swarm: Swarm, name: string, r: SwarmReadResult): Promise<ReturnType<typeof egressRatios>> {
  const e = egressRatios(r)
  t.diagnostic(`${name}: compressed ${r.build.compressedBytes} B; origin ${e.origin.toFixed(2)}x, storage ${e.storage.toFixed(2)}x, busiest reader ${e.maxReader.toFixed(2)}x`)
  // Why readers fetched frames themselves (cumulative over the tests of this swarm): for a failure's diagnosis.
  const reasons = new Map<string, number>()
  for (const [i, node] of swarm.readers.entries()) {
    if (r.readers.find((x) => x.index === i)?.killed) continue
    const text = await (await fetch(`${node.api}/metrics`)).text()
    for (const m of text.matchAll(/^snapswarm_swarm_self_fetches_total\{reason="(\w+)"\} (\d+)/gm)) reasons.set(m[1], (reasons.get(m[1]) ?? 0) + Number(m[2]))
  }
  t.diagnostic(`self fetches by reason: ${[...reasons].map(([k, v]) => `${k} ${v}`).join(', ')}`)
  return e
}

describe(`swarm of ${READERS} readers`, () => {
  let swarm: Swarm
  before(async () => {
    swarm = await startSwarm({ readers: READERS, topology: 'star', prefix: 'swarm-spread' })
  })
  after(async () => {
    await swarm?.close()
  })

  test('a pending build: each frame leaves the origin about once (origin egress <= 1.5x), every byte matches', async (t) => {
    const build = await swarm.build(MIB, 'pending', 41)
    const r = await swarm.readAll(build)
    const e = await report(t, swarm, 'pending', r)
    assert.equal(r.checkedBytes, READERS * build.data.byteLength)
    assert.ok(e.origin <= 1.5, `origin sent ${e.origin.toFixed(2)}x the compressed size`)
    assert.ok(e.maxReader <= 3, `a reader sent ${e.maxReader.toFixed(2)}x the compressed size`)
  })

  test('an uploaded build, readers cold: each frame leaves the bucket about once (storage egress <= 1.5x)', async (t) => {
    const build = await swarm.build(MIB, 'uploaded', 42)
    const r = await swarm.readAll(build)
    const e = await report(t, swarm, 'uploaded', r)
    assert.equal(r.checkedBytes, READERS * build.data.byteLength)
    assert.ok(e.storage <= 1.5, `storage sent ${e.storage.toFixed(2)}x the compressed size`)
    assert.ok(e.maxReader <= 3, `a reader sent ${e.maxReader.toFixed(2)}x the compressed size`)
  })
})

describe('faults among 4 readers', () => {
  let swarm: Swarm
  before(async () => {
    swarm = await startSwarm({ readers: READERS, topology: 'star', corrupt: [1], prefix: 'swarm-spread-faults' })
  })
  after(async () => {
    await swarm?.close()
  })

  test('a reader that serves corrupt frames is detected and penalised, its frames refetched elsewhere: 0 wrong bytes', async (t) => {
    const build = await swarm.build(MIB, 'pending', 43)
    const r = await swarm.readAll(build)
    await report(t, swarm, 'corrupt reader', r)
    assert.equal(r.checkedBytes, READERS * build.data.byteLength)
    const failures = r.readers.reduce((s, x) => s + (x.counters.verifyFailures.peer ?? 0), 0)
    t.diagnostic(`verification failures of peer frames: ${failures}`)
    assert.ok(failures > 0, 'the corrupt reader owned or held frames the others asked it for')
    // A peer that sent a bad copy of a frame is never asked for that frame again (and, penalised, owns
    // no cold frames and is asked last): no reader sees more bad frames than the build has frames.
    // (A batch asked before the first bad answer arrived can still bring several at once.)
    const frames = Math.ceil(build.data.byteLength / (2 * 1024 * 1024))
    for (const x of r.readers) if (x.index !== 1) assert.ok((x.counters.verifyFailures.peer ?? 0) <= frames, `reader ${x.index}: ${x.counters.verifyFailures.peer} bad frames`)
  })

  test('a reader killed (-9) mid-swarm: every other reader completes byte-exact', async (t) => {
    const build = await swarm.build(MIB, 'pending', 44)
    const r = await swarm.readAll(build, { kill: { index: 2, atShare: 0.3 } })
    await report(t, swarm, 'killed reader', r)
    for (const x of r.readers) if (x.index !== 2) assert.notEqual(x.ms, null, `reader ${x.index} completed`)
    assert.equal(r.checkedBytes, (READERS - 1) * build.data.byteLength)
  })
})
