/**
 * Frames streams opened ahead of the request (PeerClient.warmFrames), between in-process nodes over
 * real TCP on 127.0.0.1: the next frames request to that peer takes the warm stream and gets its bytes
 * exactly, and warms the stream of the request after it; one left unused is closed within its age limit and its server counts it `unused`, not as a
 * failed request; a warm stream reset by the remote is not used.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createRegistry } from '../../src/obs/metrics.ts'
import { PeerClient } from '../../src/p2p/content/client.ts'
import { equalBytes, startPeer, stopPeers, type TestPeer, waitFor } from './helpers.ts'

const KiB = 1024

interface Conn {
  remotePeer: { toString(): string }
  streams: { abort(e: Error): void }[]
}

/** The libp2p connections of a test peer (reaching into the node: the test resets streams under the client). */
function connOf(p: TestPeer): Conn[] {
  return (p.node as unknown as { libp2p: { getConnections(): Conn[] } }).libp2p.getConnections()
}

async function servedCount(registry: ReturnType<typeof createRegistry>, status: string): Promise<number> {
  const text = await registry.getSingleMetricAsString('snapswarm_peer_served_total')
  const m = new RegExp(`protocol="frames",status="${status}"\\} (\\d+)`).exec(text)
  return m ? Number(m[1]) : 0
}

describe('warm frames streams', () => {
  let a: TestPeer
  let b: TestPeer
  const registry = createRegistry()

  before(async () => {
    a = await startPeer({ registry })
    b = await startPeer({ bootstrap: a.addrs() })
  })
  after(() => stopPeers(a, b))

  it('the next frames request takes the warm stream and gets every byte exactly', async () => {
    const { buildId, ranges, data } = a.provider.addBuild('memfile', 4, 200 * KiB)
    const taken = b.client.warmStats.taken
    b.client.warmFrames(a.peerId)
    const res = await b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', ranges)
    assert.equal(b.client.warmStats.taken, taken + 1)
    assert.equal(res.status, 'OK')
    if (res.status !== 'OK') return
    for (const [i, r] of ranges.entries()) assert.ok(equalBytes(res.frames[i], data.subarray(r.startC, r.startC + r.sizeC)), `frame ${i}`)
    // The request warmed the next one's stream: a second request takes it too, and its bytes are exact.
    const again = await b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', ranges.slice(1, 2))
    assert.equal(again.status, 'OK')
    if (again.status === 'OK') assert.ok(equalBytes(again.frames[0], data.subarray(ranges[1].startC, ranges[1].startC + ranges[1].sizeC)))
    assert.equal(b.client.warmStats.taken, taken + 2)
  })

  it('an unused warm stream is closed after its age limit and counted unused, not as an error', async () => {
    const client = new PeerClient(b.node, { stallMs: 400 }) // warm streams live 200 ms
    try {
      const errors = await servedCount(registry, 'error')
      const unused = await servedCount(registry, 'unused')
      client.warmFrames(a.peerId)
      client.warmFrames(a.peerId) // one per peer: the second call is a no-op
      await waitFor(() => client.warmStats.expired === 1, 5000, 'the warm stream to expire')
      let counted = unused
      await waitFor(
        () => {
          void servedCount(registry, 'unused').then((n) => (counted = n))
          return counted === unused + 1
        },
        5000,
        'the server to count the unused stream',
      )
      assert.equal(await servedCount(registry, 'error'), errors)
      assert.equal(client.warmStats.expired, 1)
      assert.equal(client.warmStats.taken, 0)
    } finally {
      client.close()
    }
  })

  it('a warm stream the remote reset while it waited is not used; the request opens a new one', async () => {
    const { buildId, ranges, data } = a.provider.addBuild('memfile', 1, 64 * KiB)
    const c = await startPeer({ bootstrap: a.addrs() })
    const client = new PeerClient(c.node, { stallMs: 10_000 })
    try {
      client.warmFrames(a.peerId)
      // Let it open, then make the server reset every open inbound stream of c.
      await waitFor(() => connOf(c).some((conn) => conn.streams.length > 0), 5000, 'the warm stream to open')
      for (const conn of connOf(a)) {
        if (conn.remotePeer.toString() === c.peerId) for (const s of conn.streams) s.abort(new Error('test: reset'))
      }
      await waitFor(() => connOf(c).every((conn) => conn.streams.length === 0), 5000, 'the reset to reach the warm stream')
      const res = await client.getFrames(a.peerId, buildId, 'memfile', 'zstd', ranges)
      assert.equal(res.status, 'OK')
      if (res.status === 'OK') assert.ok(equalBytes(res.frames[0], data.subarray(0, ranges[0].sizeC)))
      assert.equal(client.warmStats.taken, 1)
    } finally {
      client.close()
      await stopPeers(c)
    }
  })
})

describe('warm frames streams and the serving limit', () => {
  it('regression: a warm stream that arrived while the serving limit was reached is served once a slot is free, not answered BUSY', async () => {
    const a = await startPeer({ server: { maxServing: 1 } })
    const b = await startPeer({ bootstrap: a.addrs() })
    try {
      const { buildId, ranges, data } = a.provider.addBuild('memfile', 2, 64 * KiB)
      let release = (): void => {}
      a.provider.hold = new Promise((r) => {
        release = r
      })
      const held = b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', [ranges[0]])
      await waitFor(() => a.provider.calls === 1, 5000, 'the held request to take the only slot')
      b.client.warmFrames(a.peerId) // arrives while the slot is taken
      await waitFor(() => connOf(b).some((conn) => conn.streams.length >= 2), 5000, 'the warm stream to open')
      release()
      a.provider.hold = undefined
      assert.equal((await held).status, 'OK')
      const res = await b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', [ranges[1]])
      assert.equal(b.client.warmStats.taken, 1)
      assert.equal(res.status, 'OK')
      if (res.status === 'OK') assert.ok(equalBytes(res.frames[0], data.subarray(ranges[1].startC, ranges[1].startC + ranges[1].sizeC)))
    } finally {
      await stopPeers(a, b)
    }
  })
  it('an idle warm stream holds no serving slot: with a limit of 1, another reader is served meanwhile', async () => {
    const a = await startPeer({ server: { maxServing: 1 } })
    const b = await startPeer({ bootstrap: a.addrs() })
    const c = await startPeer({ bootstrap: a.addrs() })
    try {
      const { buildId, ranges } = a.provider.addBuild('memfile', 1, 64 * KiB)
      b.client.warmFrames(a.peerId)
      await waitFor(() => connOf(b).some((conn) => conn.streams.length > 0), 5000, 'the warm stream to open')
      assert.equal((await c.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', ranges)).status, 'OK')
      assert.equal((await b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', ranges)).status, 'OK')
      assert.equal(b.client.warmStats.taken, 1)
    } finally {
      await stopPeers(a, b, c)
    }
  })
})
