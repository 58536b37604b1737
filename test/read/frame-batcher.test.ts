/**
 * FrameBatcher between real peers on 127.0.0.1: requests of one tick go out as one batch, each frame
 * reaches its waiter as it arrives, and a batch nobody needs any more is aborted, not carried to the end.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FrameBatcher } from '../../src/read/sources/frame-batcher.ts'
import { createRegistry, type Registry } from '../../src/obs/metrics.ts'
import { waitFor as waitUntil } from '../../bench/lib/procs.ts'
import { equalBytes, startPeer, stopPeers, type TestPeer } from '../p2p/helpers.ts'

async function requests(reg: Registry, outcome: string): Promise<number> {
  const m = await reg.getSingleMetric('snapswarm_peer_requests_total')!.get()
  return m.values.filter((v) => v.labels.protocol === 'frames' && v.labels.outcome === outcome).reduce((s, v) => s + v.value, 0)
}

test('one batch per tick; frame 0 arrives while frame 1 is held; when its reader gives up the batch is aborted', async () => {
  const peers: TestPeer[] = []
  let open!: () => void
  try {
    // The serving side waits 30 s for its provider before resetting a request, so only the client can end this one early.
    const a = await startPeer({ server: { stallMs: 30_000 } })
    peers.push(a)
    const registry = createRegistry()
    const b = await startPeer({ bootstrap: a.addrs(), registry })
    peers.push(b)
    const { buildId, ranges, data } = a.provider.addBuild('memfile', 2, 64 * 1024)
    a.provider.holdFrom = { index: 1, gate: new Promise<void>((r) => (open = r)) }
    const batcher = new FrameBatcher(b.client, { timeoutMs: 20_000, stallMs: 10_000 })
    const reader1 = new AbortController()
    const calls = a.provider.calls
    const f0 = batcher.get(a.peerId, buildId, 'memfile', 'zstd', ranges[0], new AbortController().signal)
    const f1 = batcher.get(a.peerId, buildId, 'memfile', 'zstd', ranges[1], reader1.signal)
    f1.catch(() => {})
    const got = await f0
    assert.equal(a.provider.calls - calls, 1, 'both frames in one request')
    assert.ok(got.status === 'OK' && equalBytes(got.bytes, data.subarray(0, 64 * 1024)), 'frame 0 before the held frame 1')
    reader1.abort(new Error('reader 1 gave up'))
    await assert.rejects(f1, /reader 1 gave up/)
    // Nobody needs the rest: the request ends now, not when the peer finally sends frame 1.
    await waitUntil('the batch request to be aborted', async () => (await requests(registry, 'error')) === 1, 5000)
    assert.equal(await requests(registry, 'OK'), 0)
  } finally {
    open?.()
    await stopPeers(...peers)
  }
})
