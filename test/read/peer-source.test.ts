/**
 * The peer slot's penalties (review item: a peer with one transient error was deprioritised forever):
 * penalties decay, the map is bounded, and the per-frame `distrusted` exclusion is kept. The
 * integration test runs real peers on 127.0.0.1 with the real client, batcher and board.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BuildStatusBoard } from '../../src/cluster/build-status.ts'
import type { FileKind } from '../../src/format/types.ts'
import { LocalBuilds } from '../../src/origin/local-builds.ts'
import type { FrameRef } from '../../src/read/source.ts'
import { heldFramesFirst } from '../../src/read/sources/held-frames.ts'
import { BUSY_ROUNDS, MAX_PENALIZED_PEERS, PeerFrameSource, PeerPenalties } from '../../src/read/sources/peer.ts'
import { equalBytes, startPeer, stopPeers, type TestPeer, waitFor } from '../p2p/helpers.ts'

test('penalties: accumulate, halve every half-life, drop to 0 below the floor', () => {
  let t = 0 // a clock the test moves: the arithmetic, not the scheduler, is under test here
  const p = new PeerPenalties(100, () => t)
  assert.equal(p.of('a'), 0)
  p.add('a', 10)
  assert.equal(p.of('a'), 10)
  p.add('b', 1)
  t = 100
  p.add('b', 1)
  assert.equal(p.of('b'), 1.5, 'the first error had halved when the second came')
  assert.equal(p.of('a'), 5)
  t = 350
  assert.ok(Math.abs(p.of('a') - 10 * 2 ** -3.5) < 1e-9, `after 3.5 half-lives: ${p.of('a')}`)
  // 10 falls below the 0.25 floor after ~5.3 half-lives; then it is forgotten, not just small.
  t = 600
  assert.equal(p.of('a'), 0)
  assert.equal(p.of('b'), 0)
  assert.equal(p.size, 0)
  assert.throws(() => new PeerPenalties(0), /half-life must be positive/)
})

test('penalties: at most MAX_PENALIZED_PEERS tracked; the peer penalised longest ago goes first', () => {
  const p = new PeerPenalties(60_000)
  for (let i = 0; i < MAX_PENALIZED_PEERS + 10; i++) p.add(`peer-${i}`, 1)
  assert.equal(p.size, MAX_PENALIZED_PEERS)
  for (let i = 0; i < 10; i++) assert.equal(p.of(`peer-${i}`), 0, `peer-${i} should be forgotten`)
  assert.ok(p.of(`peer-${MAX_PENALIZED_PEERS + 9}`) > 0.99)
  // Penalising an old peer again moves it to the young end: it survives the next evictions.
  p.add('peer-10', 1)
  for (let i = 0; i < 5; i++) p.add(`late-${i}`, 1)
  assert.ok(p.of('peer-10') > 1.99)
  assert.equal(p.of('peer-11'), 0)
})

test('a peer that served a corrupt frame is asked last, then again once its penalty decays; never for that frame', async () => {
  const peers: TestPeer[] = []
  try {
    const a = await startPeer()
    const b = await startPeer()
    peers.push(a, b)
    const reader = await startPeer({ bootstrap: [...a.addrs(), ...b.addrs()] })
    peers.push(reader)
    const kind: FileKind = 'memfile'
    const frameSize = 4096
    const { buildId, ranges, data } = a.provider.addBuild(kind, 4, frameSize)
    b.provider.data.set(`${buildId}/${kind}`, data)
    b.provider.codecs.set(`${buildId}/${kind}`, 'zstd')

    const board = new BuildStatusBoard()
    // Holders (not announcements) so the order is known: A first, B second, when neither is penalised.
    board.addHolder(buildId, a.peerId)
    board.addHolder(buildId, b.peerId)
    const source = new PeerFrameSource(reader.client, reader.directory, board, new LocalBuilds(reader.dataDir), {
      timeoutMs: 5000,
      stallMs: 2000,
      penaltyHalfLifeMs: 100,
    })
    const ref = (i: number): FrameRef => ({ buildId, kind, codec: 'zstd', startU: i * frameSize, sizeU: frameSize, ...ranges[i] })
    const fetch = async (i: number) => {
      const bytes = await source.fetch(ref(i), AbortSignal.timeout(5000))
      assert.ok(bytes && equalBytes(bytes, data.subarray(ranges[i].startC, ranges[i].startC + ranges[i].sizeC)), `frame ${i}`)
    }
    const calls = () => [a.provider.calls, b.provider.calls]

    await fetch(0)
    assert.deepEqual(calls(), [1, 0], 'A is asked first')
    source.penalize(ref(0)) // the fetcher found A's copy of frame 0 corrupt
    assert.ok(source.penalties.of(a.peerId) > 5)

    await fetch(1)
    assert.deepEqual(calls(), [1, 1], 'penalised A goes after B')
    await fetch(0)
    assert.deepEqual(calls(), [1, 2], 'frame 0 comes from B')

    await waitFor(() => source.penalties.of(a.peerId) === 0, 3000, "A's penalty to decay")
    await fetch(2)
    assert.deepEqual(calls(), [2, 2], 'A is first again once its penalty decayed')
    await fetch(0)
    assert.deepEqual(calls(), [2, 3], 'A is still never asked for the frame it corrupted')

    // An error (a holder that cannot be reached) costs 1, also decaying.
    const gone = await startPeer()
    await stopPeers(gone)
    const other = new BuildStatusBoard()
    other.addHolder(buildId, gone.peerId)
    other.addHolder(buildId, b.peerId)
    const fresh = new PeerFrameSource(reader.client, reader.directory, other, new LocalBuilds(reader.dataDir), {
      timeoutMs: 2000,
      stallMs: 1000,
      penaltyHalfLifeMs: 300,
    })
    const bytes = await fresh.fetch(ref(3), AbortSignal.timeout(5000))
    assert.ok(bytes && equalBytes(bytes, data.subarray(ranges[3].startC, ranges[3].startC + ranges[3].sizeC)))
    assert.ok(fresh.penalties.of(gone.peerId) > 0.5, 'the unreachable peer is penalised')
    await waitFor(() => fresh.penalties.of(gone.peerId) === 0, 3000, 'the error penalty to decay')
  } finally {
    await stopPeers(...peers)
  }
})

test('a frame held in the node’s own frame store is not asked of peers, unless its build is pending', async () => {
  const peers: TestPeer[] = []
  try {
    const a = await startPeer()
    peers.push(a)
    const reader = await startPeer({ bootstrap: a.addrs() })
    peers.push(reader)
    const { buildId, ranges } = a.provider.addBuild('memfile', 2, 4096)
    const board = new BuildStatusBoard()
    board.addHolder(buildId, a.peerId)
    const held = new Set<number>([ranges[0].startC])
    const stored = new Uint8Array([7])
    const source = new PeerFrameSource(reader.client, reader.directory, board, new LocalBuilds(reader.dataDir), { timeoutMs: 5000, stallMs: 2000 })
    const store = { name: 'frame-store', index: { has: (r: FrameRef) => held.has(r.startC) }, fetch: async () => stored, remove: async () => {} }
    // The fetcher's order: the store's own frames first, then the peers.
    const chain = [heldFramesFirst(store, (id) => source.asksFirst(id)), source]
    const fetchChain = async (r: FrameRef) => {
      for (const s of chain) {
        const bytes = await s.fetch(r, AbortSignal.timeout(5000))
        if (bytes) return bytes
      }
      return null
    }
    const ref = (i: number): FrameRef => ({ buildId, kind: 'memfile', codec: 'zstd', startU: i * 4096, sizeU: 4096, ...ranges[i] })
    assert.equal(await fetchChain(ref(0)), stored, 'the store answers before any peer is asked')
    assert.equal(a.provider.calls, 0)
    assert.ok(await fetchChain(ref(1)), 'a frame the store lacks comes from the peer')
    assert.equal(a.provider.calls, 1)
    board.set(buildId, 'pending') // storage would not have it if the stored copy were bad: ask the origin
    assert.notEqual(await fetchChain(ref(0)), stored)
    assert.equal(a.provider.calls, 2)
  } finally {
    await stopPeers(...peers)
  }
})

test('partial cached copies: one cached peer asked per fetch; the copies take turns after a miss', async () => {
  const peers: TestPeer[] = []
  try {
    const [c1, c2] = [await startPeer(), await startPeer()]
    peers.push(c1, c2)
    const reader = await startPeer({ bootstrap: [c1.addrs()[0], c2.addrs()[0]] })
    peers.push(reader)
    // Both announce the build as cached but hold none of its frames (their providers answer NOT_AVAILABLE).
    const buildId = crypto.randomUUID()
    for (const c of [c1, c2]) c.announcer.announce({ buildId, state: 'cached', memfileSize: 0, rootfsSize: 0 })
    await waitFor(() => reader.directory.peersFor(buildId).length === 2, 10_000, 'both cached announcements')
    const source = new PeerFrameSource(reader.client, reader.directory, new BuildStatusBoard(), new LocalBuilds(reader.dataDir), { timeoutMs: 5000, stallMs: 2000 })
    const ref = (i: number): FrameRef => ({ buildId, kind: 'memfile', codec: 'zstd', startU: i * 4096, sizeU: 4096, startC: i * 1000, sizeC: 1000 })
    assert.equal(await source.fetch(ref(0), AbortSignal.timeout(5000)), null)
    assert.deepEqual([c1.provider.calls + c2.provider.calls], [1], 'one cached peer asked, not both: the next sources are local disk and storage')
    const first = c1.provider.calls === 1 ? c1 : c2
    const second = first === c1 ? c2 : c1
    assert.equal(await source.fetch(ref(1), AbortSignal.timeout(5000)), null)
    assert.deepEqual([first.provider.calls, second.provider.calls], [1, 1], 'the copy that just lacked a frame goes last: the other one is asked')
    assert.equal(await source.fetch(ref(2), AbortSignal.timeout(5000)), null)
    assert.deepEqual([first.provider.calls, second.provider.calls], [2, 1], 'then back to the one that missed longest ago')
  } finally {
    await stopPeers(...peers)
  }
})

test('regression: an origin at its serving limit (BUSY) failed a pending read: its BUSY is asked again after a back-off, a bounded number of rounds', async () => {
  const peers: TestPeer[] = []
  try {
    const origin = await startPeer()
    peers.push(origin)
    const reader = await startPeer({ bootstrap: origin.addrs() })
    peers.push(reader)
    const kind: FileKind = 'memfile'
    const { buildId, ranges, data } = origin.provider.addBuild(kind, 2, 4096)
    origin.announcer.announce({ buildId, state: 'pending', memfileSize: 2 * 4096, rootfsSize: 0 })
    await waitFor(() => reader.directory.peersFor(buildId).some((e) => e.state === 'pending'), 10_000, 'the pending announcement')
    // The origin's serving slots are full for its first `busyFor` frame requests, then it serves.
    let busyFor = 3
    const serve = origin.provider.getFrames.bind(origin.provider)
    origin.provider.getFrames = async (...args) => {
      if (busyFor > 0) {
        busyFor--
        origin.provider.calls++
        return { status: 'BUSY' }
      }
      return serve(...args)
    }
    const source = new PeerFrameSource(reader.client, reader.directory, new BuildStatusBoard(), new LocalBuilds(reader.dataDir), { timeoutMs: 5000, stallMs: 2000 })
    const ref = (i: number): FrameRef => ({ buildId, kind, codec: 'zstd', startU: i * 4096, sizeU: 4096, ...ranges[i] })
    const bytes = await source.fetch(ref(0), AbortSignal.timeout(30_000))
    assert.ok(bytes && equalBytes(bytes, data.subarray(0, 4096)), 'the frame, byte for byte, once the origin had a free slot')
    assert.equal(origin.provider.calls, 4, 'three BUSY answers, then served')

    // An origin that stays BUSY: the fetch ends (not found here) after BUSY_ROUNDS rounds, never hangs.
    busyFor = Number.POSITIVE_INFINITY
    const before = origin.provider.calls
    assert.equal(await source.fetch(ref(1), AbortSignal.timeout(30_000)), null)
    assert.equal(origin.provider.calls - before, BUSY_ROUNDS)
  } finally {
    await stopPeers(...peers)
  }
})
