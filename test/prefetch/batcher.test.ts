/**
 * Between real peers on 127.0.0.1: a read's frame and prefetched frames asked for in the same tick go
 * out as separate batches, so the read's frame arrives while the prefetch batch is held by the peer.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FrameBatcher } from '../../src/read/sources/frame-batcher.ts'
import { equalBytes, startPeer, stopPeers, type TestPeer } from '../p2p/helpers.ts'

test('a demand frame never shares a batch with prefetched frames: it arrives while the prefetch batch is held', async () => {
  const peers: TestPeer[] = []
  let open!: () => void
  try {
    const a = await startPeer({ server: { stallMs: 30_000 } })
    peers.push(a)
    const b = await startPeer({ bootstrap: a.addrs() })
    peers.push(b)
    const { buildId, ranges, data } = a.provider.addBuild('memfile', 3, 64 * 1024)
    // The peer holds every frame from index 1 of a batch: the prefetch batch (frames 0, 1) stalls after frame 0.
    a.provider.holdFrom = { index: 1, gate: new Promise<void>((r) => (open = r)) }
    const batcher = new FrameBatcher(b.client, { timeoutMs: 20_000, stallMs: 10_000 })
    const calls = a.provider.calls
    const signal = new AbortController().signal
    const p0 = batcher.get(a.peerId, buildId, 'memfile', 'zstd', ranges[0], signal, true)
    const p1 = batcher.get(a.peerId, buildId, 'memfile', 'zstd', ranges[1], signal, true)
    const demand = await batcher.get(a.peerId, buildId, 'memfile', 'zstd', ranges[2], signal)
    assert.equal(a.provider.calls - calls, 2, 'two requests: prefetches and the read apart')
    assert.ok(demand.status === 'OK' && equalBytes(demand.bytes, data.subarray(128 * 1024, 192 * 1024)), 'the read frame, exact, while prefetch frame 1 is held')
    open()
    const [g0, g1] = await Promise.all([p0, p1])
    assert.ok(g0.status === 'OK' && equalBytes(g0.bytes, data.subarray(0, 64 * 1024)))
    assert.ok(g1.status === 'OK' && equalBytes(g1.bytes, data.subarray(64 * 1024, 128 * 1024)))
  } finally {
    open?.()
    await stopPeers(...peers)
  }
})
