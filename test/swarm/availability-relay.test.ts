/**
 * Serving frames the swarm knows of but the frame store does not hold (yet): the relay
 * (src/cluster/swarm-relay.ts) behind the cached-frame server, over a real frame store on disk and
 * real availability bookkeeping, no network. Only verified bytes (those the fetcher handed over) are
 * ever served; a relay request waits for a frame on its way, or has it fetched once for every asker.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BuildStatusBoard } from '../../src/cluster/build-status.ts'
import { CachedFrameServer } from '../../src/cluster/cached-frames.ts'
import { SwarmRelay } from '../../src/cluster/swarm-relay.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { createRegistry } from '../../src/obs/metrics.ts'
import { LocalBuilds } from '../../src/origin/local-builds.ts'
import type { FrameBatch, FramesAnswer } from '../../src/p2p/index.ts'
import { FrameStore } from '../../src/read/sources/frame-store.ts'
import type { FrameRef } from '../../src/read/source.ts'
import { SwarmAvailability } from '../../src/swarm/availability.ts'
import { frameData, KiB, newId, refOf, vmData, withTmp } from '../read/helpers.ts'

const FRAME = 64 * KiB

async function setup(dir: string, fetchFor: (ref: FrameRef) => void = () => {}) {
  const store = await FrameStore.open({ dir, maxBytes: 1 << 30 })
  const swarm = new SwarmAvailability('me', undefined, 4)
  const relay = new SwarmRelay({ swarm, fetchFor: async (ref) => fetchFor(ref), registry: createRegistry(), log: silentLogger })
  const server = new CachedFrameServer({ store, builds: new LocalBuilds(dir), board: new BuildStatusBoard(), registry: createRegistry(), log: silentLogger, relay })
  const id = newId()
  const plain = vmData(4 * FRAME, 3)
  const f = await frameData('zstd', plain, FRAME)
  swarm.register(id, 'memfile', f.table)
  const refs = f.table.frames.map((_, i) => refOf(id, 'memfile', f.table, i))
  const bytes = (r: FrameRef) => f.stored.subarray(r.startC, r.startC + r.sizeC)
  return { store, swarm, server, id, refs, bytes }
}

async function served(a: FramesAnswer): Promise<Buffer> {
  assert.equal(a.status, 'OK')
  const batch = (a as { batch: FrameBatch }).batch
  const out = Buffer.from(await batch.frame(0, AbortSignal.timeout(5000)))
  batch.release?.()
  return out
}

const range = (r: FrameRef) => [{ startC: r.startC, sizeC: r.sizeC }]

test('regression: a frame announced held while the frame store still writes it is served from memory, not NOT_AVAILABLE', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir)
    const r = s.refs[1]
    // Arrived and verified (held, announced), not written to the store yet.
    s.swarm.arrived(r, s.bytes(r))
    assert.ok((await served(await s.server.getFrames(s.id, 'memfile', 'zstd', range(r)))).equals(s.bytes(r)))
    // A frame neither stored nor arrived is still NOT_AVAILABLE on the ordinary protocol (no wait).
    assert.deepEqual(await s.server.getFrames(s.id, 'memfile', 'zstd', range(s.refs[2])), { status: 'NOT_AVAILABLE' })
  })
})

test('a relay request for a frame on its way is answered when it arrives, with the verified bytes', async () => {
  await withTmp(async (dir) => {
    const fetched: FrameRef[] = []
    const s = await setup(dir, (ref) => fetched.push(ref))
    const r = s.refs[2]
    s.swarm.startFetching(s.swarm.locate(r)!)
    const answer = s.server.getFrames(s.id, 'memfile', 'zstd', range(r), AbortSignal.timeout(5000), { relay: true })
    setImmediate(() => s.swarm.arrived(r, s.bytes(r)))
    assert.ok((await served(await answer)).equals(s.bytes(r)))
    assert.equal(fetched.length, 0, 'this node was fetching it already: no second fetch')
  })
})

test('a relay request for a cold frame has it fetched once, for every reader that asks', async () => {
  await withTmp(async (dir) => {
    const fetched: FrameRef[] = []
    let s: Awaited<ReturnType<typeof setup>>
    s = await setup(dir, (ref) => {
      fetched.push(ref)
      // The fetch marks the frame in flight (as the peer source does), then it arrives verified.
      s.swarm.startFetching(s.swarm.locate(ref)!)
      setTimeout(() => s.swarm.arrived(ref, s.bytes(ref)), 20)
    })
    const r = s.refs[3]
    const asks = [0, 1, 2].map(() => s.server.getFrames(s.id, 'memfile', 'zstd', range(r), AbortSignal.timeout(5000), { relay: true }))
    for (const a of asks) assert.ok((await served(await a)).equals(s.bytes(r)))
    assert.equal(fetched.length, 1, 'fetched once for three askers')
    assert.deepEqual({ ...fetched[0], content: undefined }, { ...r, content: undefined })
  })
})

test('a relay request for a frame of a file this node does not read is NOT_AVAILABLE at once', async () => {
  await withTmp(async (dir) => {
    const s = await setup(dir)
    assert.deepEqual(await s.server.getFrames(newId(), 'memfile', 'zstd', range(s.refs[0]), AbortSignal.timeout(5000), { relay: true }), { status: 'NOT_AVAILABLE' })
  })
})
