/**
 * The swarm simulation's bookkeeping (bench/sim/engine.ts) on cases small enough to work out by hand,
 * with the product's selection code (bench/sim/policy.ts over src/swarm/select.ts) and without it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { type SimScenario, simulate } from '../../bench/sim/engine.ts'
import { directPolicy, swarmPolicy } from '../../bench/sim/policy.ts'

const MiB = 1024 * 1024

/** 3 nodes, 4 frames of 1,000 bytes (1 MiB raw), 1 ms latency, 1 MB/s links, 2 ms CPU per frame, one frame in flight. */
function tiny(over: Partial<SimScenario> = {}): SimScenario {
  return {
    nodes: 3,
    frames: 4,
    frameBytesU: MiB,
    frameBytesC: 1000,
    mode: 'pending',
    net: { nodeBps: 1e6, originBps: 1e6, latencyMs: 1, storageFirstByteMs: 50, storageRequestBps: 1e6, cpuMsPerMiB: 2, cores: 1 },
    window: 1,
    serveCap: 64,
    sample: 16,
    startSpreadMs: 0,
    startTimes: [0, 1000, 2000],
    order: 'sequential',
    seed: 1,
    ...over,
  }
}

test('direct: every node takes every frame from the origin; each frame costs request latency + 1 ms on the wire + latency + 2 ms CPU', () => {
  const r = simulate(tiny(), directPolicy)
  assert.equal(r.originBytes, 3 * 4 * 1000)
  assert.equal(r.peerBytes, 0)
  assert.equal(r.storageBytes, 0)
  assert.deepEqual(r.completionMs, [20, 20, 20])
  assert.equal(r.makespanMs, 2020)
})

test('direct, uploaded: every frame from the bucket: latency + 50 ms first byte + 1 ms at 1 MB/s + 2 ms CPU', () => {
  const r = simulate(tiny({ mode: 'uploaded' }), directPolicy)
  assert.equal(r.storageBytes, 12_000)
  assert.equal(r.storageRequests, 12)
  assert.equal(r.originBytes, 0)
  assert.deepEqual(r.completionMs, [4 * 54, 4 * 54, 4 * 54])
})

test('swarm: each frame leaves the origin once; the later nodes take the rest from peers', () => {
  const r = simulate(tiny(), swarmPolicy(3))
  assert.equal(r.originBytes, 4 * 1000)
  assert.equal(r.storageBytes, 0)
  assert.equal(r.peerBytes, 8 * 1000, 'every node verifies every frame exactly once: 12 frames received, 4 from the origin')
  assert.equal(r.completionMs.length, 3)
  assert.ok(r.completionMs.every((ms) => ms > 0 && ms <= 40), `completion ${r.completionMs}`)
})

test('swarm, uploaded, 20 nodes at the same moment in their own orders: the bucket sends each frame once, bytes are conserved', () => {
  const s = tiny({ nodes: 20, frames: 64, mode: 'uploaded', window: 4, startTimes: undefined, startSpreadMs: 5, order: 'shuffled' })
  const r = simulate(s, swarmPolicy(20))
  assert.equal(r.storageBytes, 64 * 1000)
  assert.equal(r.storageRequests, 64)
  assert.equal(r.originBytes + r.storageBytes + r.peerBytes, 20 * 64 * 1000)
  assert.ok(r.maxReaderServed <= 3 * 64 * 1000, `busiest reader sent ${r.maxReaderServed}`)
})

test('regression: a node waiting on a peer for a frame was shown as fetching it, so the owner asked to fetch it followed the asker and both waited for ever', () => {
  // Node 0 asks frame 1's owner (node 1, not started) to fetch it; node 1 must not see node 0 as fetching frame 1.
  const r = simulate(tiny(), swarmPolicy(3))
  assert.ok(r.completionMs.every((ms) => Number.isFinite(ms)))
})

test('what-if busyRetry: when every peer answers BUSY the plan is made again after the back-off, then the node goes upstream', () => {
  const plain = simulate(tiny({ serveCap: 0 }), swarmPolicy(3))
  const retried = simulate(tiny({ serveCap: 0, busyRetry: { times: 2, backoffMs: 10 } }), swarmPolicy(3))
  for (const r of [plain, retried]) {
    assert.equal(r.originBytes, 12_000, 'no peer serves anything: every frame of every node comes from the origin')
    assert.equal(r.peerBytes, 0)
  }
  assert.ok(plain.busy > 0, 'peers were asked and answered BUSY')
  assert.equal(retried.busy, 3 * plain.busy, 'each plan with a BUSY answer was made twice more')
  assert.ok(Math.max(...retried.completionMs) > Math.max(...plain.completionMs), 'the back-offs cost time')
})
