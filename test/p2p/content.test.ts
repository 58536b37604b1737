/** Header, frames and blob protocols between in-process nodes over real TCP on 127.0.0.1. */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { FramesResponse, GetFrames, Kind, Status } from '../../protocols/snapswarm.js'
import { createRegistry } from '../../src/obs/metrics.ts'
import { MAX_FRAMES_RESPONSE_BYTES, PROTOCOL_FRAMES } from '../../src/p2p/constants.ts'
import { PeerStallError, PeerStreamError } from '../../src/p2p/errors.ts'
import { buildIdToWire } from '../../src/p2p/wire/messages.ts'
import { WireStream } from '../../src/p2p/wire/stream.ts'
import { CoarseTimer } from '../../src/util/coarse-timer.ts'
import { equalBytes, MemoryProvider, startPeer, stopPeers, type TestPeer, waitFor } from './helpers.ts'

const KiB = 1024

describe('content protocols, two nodes', () => {
  let a: TestPeer
  let b: TestPeer
  const registry = createRegistry()

  before(async () => {
    a = await startPeer({ registry })
    b = await startPeer({ bootstrap: a.addrs() })
  })
  after(() => stopPeers(a, b))

  it('serves a header with its pending flag, byte-exact', async () => {
    const { buildId } = a.provider.addBuild('memfile', 1, KiB, true)
    const res = await b.client.getHeader(a.peerId, buildId, 'memfile')
    assert.equal(res.status, 'OK')
    assert.ok(res.status === 'OK' && res.pending)
    assert.ok(res.status === 'OK' && equalBytes(res.header, a.provider.headers.get(`${buildId}/memfile`)!.header))
  })

  it('answers NOT_AVAILABLE and USE_STORAGE as data', async () => {
    const missing = await b.client.getHeader(a.peerId, crypto.randomUUID(), 'rootfs')
    assert.equal(missing.status, 'NOT_AVAILABLE')
    const { buildId, ranges } = a.provider.addBuild('rootfs', 2, KiB)
    a.provider.statusOf.set(buildId, 'USE_STORAGE')
    assert.equal((await b.client.getFrames(a.peerId, buildId, 'rootfs', 'zstd', ranges)).status, 'USE_STORAGE')
  })

  it('serves a batch of frames byte-exact, in request order', async () => {
    const { buildId, ranges, data } = a.provider.addBuild('memfile', 8, 300 * KiB)
    const wanted = [ranges[5], ranges[0], ranges[7]]
    const res = await b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', wanted)
    assert.equal(res.status, 'OK')
    if (res.status !== 'OK') return
    for (const [i, r] of wanted.entries()) assert.ok(equalBytes(res.frames[i], data.subarray(r.startC, r.startC + r.sizeC)), `frame ${i}`)
  })

  it('hands each frame to onFrame as soon as it is in, before the rest of the batch', async () => {
    const { buildId, ranges, data } = a.provider.addBuild('memfile', 4, 200 * KiB)
    let open!: () => void
    a.provider.holdFrom = { index: 2, gate: new Promise<void>((r) => (open = r)) }
    const got: number[] = []
    try {
      const call = b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', ranges, {
        onFrame: (i, bytes) => {
          assert.ok(equalBytes(bytes, data.subarray(ranges[i].startC, ranges[i].startC + ranges[i].sizeC)), `frame ${i}`)
          got.push(i)
        },
      })
      // Frames 0 and 1 arrive while the server still waits for frame 2: the call has not returned.
      await waitFor(() => got.length === 2, 5000, 'frames 0 and 1 ahead of the held frame 2')
      assert.deepEqual(got, [0, 1])
      open()
      const res = await call
      assert.deepEqual(got, [0, 1, 2, 3])
      assert.ok(res.status === 'OK' && equalBytes(Buffer.concat(res.frames), data))
    } finally {
      a.provider.holdFrom = undefined
      open()
    }
  })

  it('sends the codec with a frames request: a copy of another codec is NOT_AVAILABLE, not same-offset bytes', async () => {
    // A raw copy "has" every in-bounds range; only the codec tells a raw chunk from a zstd frame.
    const { buildId, ranges, data } = a.provider.addBuild('memfile', 2, 4 * KiB, true, 'none')
    const asked = a.provider.askedCodecs.length
    assert.equal((await b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', ranges)).status, 'NOT_AVAILABLE')
    assert.equal((await b.client.getFrames(a.peerId, buildId, 'memfile', 'lz4', ranges)).status, 'NOT_AVAILABLE')
    const res = await b.client.getFrames(a.peerId, buildId, 'memfile', 'none', ranges)
    assert.ok(res.status === 'OK' && equalBytes(Buffer.concat(res.frames), data))
    assert.deepEqual(a.provider.askedCodecs.slice(asked), ['zstd', 'lz4', 'none'])
  })

  it('a request without a codec (a client from before the field) reaches the provider as undefined and is served', async () => {
    const { buildId, ranges, data } = a.provider.addBuild('memfile', 1, 4 * KiB)
    const asked = a.provider.askedCodecs.length
    const stallTimer = new CoarseTimer(250)
    const signal = AbortSignal.timeout(5000)
    const raw = await b.node.openStream(a.peerId, PROTOCOL_FRAMES, signal)
    const wire = new WireStream(raw, { budget: 1 << 20, signal, stallMs: 5000, stallTimer })
    try {
      await wire.writeMessage(GetFrames.encode({ buildId: buildIdToWire(buildId), kind: Kind.MEMFILE, frames: ranges }))
      await wire.closeWrite()
      const res = await wire.readMessage(FramesResponse.decode, MAX_FRAMES_RESPONSE_BYTES, 'FramesResponse')
      assert.equal(res.status, Status.OK)
      assert.ok(equalBytes(await wire.readExact(ranges[0].sizeC), data))
      wire.finish()
    } finally {
      stallTimer.stop()
    }
    assert.deepEqual(a.provider.askedCodecs.slice(asked), [undefined])
  })

  it('serves a blob and refuses names that are not blobs without asking the provider', async () => {
    const buildId = crypto.randomUUID()
    const bytes = new Uint8Array(5000).fill(7)
    a.provider.blobs.set(`${buildId}/snapfile`, bytes)
    const res = await b.client.getBlob(a.peerId, buildId, 'snapfile')
    assert.ok(res.status === 'OK' && equalBytes(res.bytes, bytes))
    const calls = a.provider.calls
    assert.equal((await b.client.getBlob(a.peerId, buildId, '../../etc/passwd')).status, 'NOT_AVAILABLE')
    assert.equal(a.provider.calls, calls)
  })

  it('a provider failing mid-batch resets the stream: an error for the client, never a short result', async () => {
    const { buildId, ranges } = a.provider.addBuild('memfile', 3, 200 * KiB)
    const real = a.provider.getFrames.bind(a.provider)
    a.provider.getFrames = async (...args) => {
      const ans = await real(...args)
      if (ans.status !== 'OK') return ans
      const frame = ans.batch.frame
      return { status: 'OK', batch: { frame: (i, signal) => (i === 1 ? Promise.reject(new Error('disk gone')) : frame(i, signal)) } }
    }
    try {
      await assert.rejects(b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', ranges), PeerStreamError)
    } finally {
      a.provider.getFrames = real
    }
  })

  it("puts libp2p's metrics and ours in the registry passed in", async () => {
    const text = await registry.metrics()
    assert.match(text, /^libp2p_data_transfer_bytes_total/m)
    assert.match(text, /^snapswarm_peer_served_total\{protocol="header",status="OK"\} \d/m)
  })

  it('64 concurrent frame requests all succeed (no stream resets)', async () => {
    const { buildId, ranges, data } = a.provider.addBuild('memfile', 64, 64 * KiB)
    const results = await Promise.all(ranges.map((r) => b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', [r])))
    for (const [i, res] of results.entries()) {
      assert.equal(res.status, 'OK', `request ${i}`)
      if (res.status === 'OK') assert.ok(equalBytes(res.frames[0], data.subarray(ranges[i].startC, ranges[i].startC + 64 * KiB)))
    }
  })
})

describe('content protocols, overload and stalls', () => {
  it('answers BUSY above the serving limit instead of queueing', async () => {
    const a = await startPeer({ server: { maxServing: 2 } })
    const b = await startPeer({ bootstrap: a.addrs() })
    try {
      const { buildId, ranges } = a.provider.addBuild('memfile', 4, KiB)
      let release = (): void => {}
      a.provider.hold = new Promise((r) => {
        release = r
      })
      const held = [0, 1].map((i) => b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', [ranges[i]]))
      await waitFor(() => a.provider.calls === 2, 5000, 'both held requests admitted')
      const third = await b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', [ranges[2]])
      assert.equal(third.status, 'BUSY')
      release()
      for (const res of await Promise.all(held)) assert.equal(res.status, 'OK')
    } finally {
      await stopPeers(a, b)
    }
  })

  it('a stalled server fails the request by the stall timeout, not the deadline', async () => {
    const a = await startPeer({ provider: new MemoryProvider() })
    const b = await startPeer({ bootstrap: a.addrs() })
    try {
      const { buildId, ranges } = a.provider.addBuild('memfile', 1, KiB)
      a.provider.hold = new Promise(() => {}) // never sends the frame
      // Only the stall can end this request: its deadline is far away, and would end it with another error.
      await assert.rejects(b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', ranges, { stallMs: 300, timeoutMs: 600_000 }), PeerStallError)
    } finally {
      a.provider.hold = undefined
      await stopPeers(a, b)
    }
  })
})

describe('content protocols, three nodes', () => {
  it('a node fetches from two peers that hold different builds', async () => {
    const a = await startPeer()
    const b = await startPeer({ bootstrap: a.addrs() })
    const c = await startPeer({ bootstrap: [...a.addrs(), ...b.addrs()] })
    try {
      const fromA = a.provider.addBuild('memfile', 3, 100 * KiB)
      const fromB = b.provider.addBuild('rootfs', 3, 4 * KiB)
      const [ra, rb] = await Promise.all([
        c.client.getFrames(a.peerId, fromA.buildId, 'memfile', 'zstd', fromA.ranges),
        c.client.getFrames(b.peerId, fromB.buildId, 'rootfs', 'zstd', fromB.ranges),
      ])
      assert.ok(ra.status === 'OK' && equalBytes(Buffer.concat(ra.frames), fromA.data))
      assert.ok(rb.status === 'OK' && equalBytes(Buffer.concat(rb.frames), fromB.data))
      assert.equal((await c.client.getFrames(b.peerId, fromA.buildId, 'memfile', 'zstd', fromA.ranges)).status, 'NOT_AVAILABLE')
    } finally {
      await stopPeers(a, b, c)
    }
  })
})
