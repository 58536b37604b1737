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
const MIB = 16

function report(t: { diagnostic(msg: string): void }, name: string, r: SwarmReadResult): ReturnType<typeof egressRatios> {
  const e = egressRatios(r)
  t.diagnostic(`${name}: compressed ${r.build.compressedBytes} B; origin ${e.origin.toFixed(2)}x, storage ${e.storage.toFixed(2)}x, busiest reader ${e.maxReader.toFixed(2)}x`)
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
    const e = report(t, 'pending', r)
    assert.equal(r.checkedBytes, READERS * build.data.byteLength)
    assert.ok(e.origin <= 1.5, `origin sent ${e.origin.toFixed(2)}x the compressed size`)
    assert.ok(e.maxReader <= 3, `a reader sent ${e.maxReader.toFixed(2)}x the compressed size`)
  })

  test('an uploaded build, readers cold: each frame leaves the bucket about once (storage egress <= 1.5x)', async (t) => {
    const build = await swarm.build(MIB, 'uploaded', 42)
    const r = await swarm.readAll(build)
    const e = report(t, 'uploaded', r)
    assert.equal(r.checkedBytes, READERS * build.data.byteLength)
    assert.ok(e.storage <= 1.5, `storage sent ${e.storage.toFixed(2)}x the compressed size`)
    assert.ok(e.maxReader <= 3, `a reader sent ${e.maxReader.toFixed(2)}x the compressed size`)
  })
})
