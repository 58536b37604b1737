/**
 * The swarm at the scale CI can afford: one origin and 8 reader `snapswarm node` processes on
 * 127.0.0.1, every reader reading the whole 32 MiB build at the same moment (bench/lib/swarm.ts), in
 * a star (readers bootstrap to the origin only) and in a chain (each to the one before it), with the
 * build pending on the origin and uploaded (readers cold). Every byte read is compared with the
 * source. Also: a reader killed (-9) mid-swarm leaves every other reader to complete byte-exact, and
 * a reader that serves corrupt frames costs nobody a wrong byte.
 *
 * The egress of each read (origin, bucket, the busiest reader, as ratios to the compressed size) is
 * printed as a test diagnostic and held to a bound (assertSpread): the origin (pending) or the bucket
 * (uploaded) sends each frame about once, no reader more than 3x the compressed size.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { type Swarm, type SwarmReadResult, egressRatios, startSwarm } from '../../bench/lib/swarm.ts'

const READERS = 8
const MIB = 32

function report(t: { diagnostic(msg: string): void }, name: string, r: SwarmReadResult): void {
  const e = egressRatios(r)
  const ms = r.readers.flatMap((x) => (x.ms === null ? [] : [Math.round(x.ms)]))
  t.diagnostic(
    `${name}: compressed ${r.build.compressedBytes} B; origin ${e.origin.toFixed(2)}x, storage ${e.storage.toFixed(2)}x, busiest reader ${e.maxReader.toFixed(2)}x; completion ms ${ms.join(' ')}`,
  )
}

/**
 * Load spreads: the origin (pending) or the bucket (uploaded) sends each frame about once, and no
 * reader more than 3x the build. The target is 1.5x (BENCH=swarm reports it); runs on this loaded
 * machine measured 1.06-1.69x, so the test holds the line at 2.5x: far below the 6-8x of readers that
 * each fetch every frame themselves, without failing a CI run whose timing crowds the first fetches.
 */
const UPSTREAM_MAX = 2.5

function assertSpread(r: SwarmReadResult): void {
  const e = egressRatios(r)
  const upstream = r.build.mode === 'pending' ? e.origin : e.storage
  const who = r.build.mode === 'pending' ? 'origin' : 'bucket'
  assert.ok(upstream <= UPSTREAM_MAX, `${who} sent ${upstream.toFixed(2)}x the compressed size, expected <= ${UPSTREAM_MAX}x`)
  assert.ok(e.maxReader <= 3, `the busiest reader sent ${e.maxReader.toFixed(2)}x the compressed size, expected <= 3x`)
}

function assertAllComplete(r: SwarmReadResult, killed: readonly number[] = []): void {
  for (const x of r.readers) {
    if (killed.includes(x.index)) continue
    assert.notEqual(x.ms, null, `reader ${x.index} completed`)
  }
  assert.equal(r.checkedBytes, (r.readers.length - killed.length) * r.build.data.byteLength)
}

for (const topology of ['star', 'chain'] as const) {
  describe(`${topology} of ${READERS} readers`, () => {
    let swarm: Swarm
    before(async () => {
      swarm = await startSwarm({ readers: READERS, topology, prefix: `swarm-${topology}` })
    })
    after(async () => {
      await swarm?.close()
    })

    test(`${topology}: a build pending on the origin is read byte-exactly by every reader at once; the origin sends each frame about once`, async (t) => {
      const build = await swarm.build(MIB, 'pending', 31)
      const r = await swarm.readAll(build)
      report(t, `${topology} pending`, r)
      assertAllComplete(r)
      assertSpread(r)
    })

    test(`${topology}: an uploaded build is read byte-exactly by every cold reader at once; the bucket sends each frame about once`, async (t) => {
      const build = await swarm.build(MIB, 'uploaded', 32)
      const r = await swarm.readAll(build)
      report(t, `${topology} uploaded`, r)
      assertAllComplete(r)
      assertSpread(r)
    })
  })
}

describe('faults in the swarm', () => {
  let swarm: Swarm
  before(async () => {
    swarm = await startSwarm({ readers: 4, topology: 'star', corrupt: [1], prefix: 'swarm-faults' })
  })
  after(async () => {
    await swarm?.close()
  })

  test('a reader serving corrupt frames is detected and its frames refetched elsewhere: 0 wrong bytes', async (t) => {
    const build = await swarm.build(MIB, 'pending', 33)
    // The corrupting reader reads first, so it holds every frame when the others ask the swarm.
    const first = await swarm.readAll(build, { only: [1] })
    assertAllComplete(first)
    const r = await swarm.readAll(build, { only: [0, 2, 3] })
    report(t, 'corrupt reader', r)
    assertAllComplete(r)
    const failures = r.readers.map((x) => x.counters.verifyFailures.peer ?? 0)
    t.diagnostic(`verification failures of peer frames per reader: ${failures.join(' ')}`)
    assert.ok(
      failures.some((n) => n > 0),
      'the corrupt frames were received and refused',
    )
  })

  test('kill -9 of one reader mid-swarm: every other reader completes byte-exact', async (t) => {
    const build = await swarm.build(MIB, 'pending', 34)
    const r = await swarm.readAll(build, { kill: { index: 2, atShare: 0.3 } })
    report(t, 'kill one reader', r)
    assert.equal(r.readers.find((x) => x.index === 2)?.killed, true, 'the reader was killed during the read')
    assertAllComplete(r, [2])
  })
})
