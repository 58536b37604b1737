/**
 * Hostile peers speaking raw bytes: every length from the network is bounded before allocation, a
 * response is never longer than what was asked for, and a truncated stream is an error (libp2p ends
 * a reset stream's reads with no error, so a short read must be caught by us).
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { FramesResponse, HeaderResponse, Status } from '../../protocols/snapswarm.js'
import { LimitError } from '../../src/errors.ts'
import { createRegistry } from '../../src/obs/metrics.ts'
import { PROTOCOL_FRAMES, PROTOCOL_HEADER } from '../../src/p2p/constants.ts'
import { PeerProtocolError } from '../../src/p2p/errors.ts'
import { createPeerNode, type PeerNode } from '../../src/p2p/node.ts'
import { type RawStream, WireStream } from '../../src/p2p/wire/stream.ts'
import { CoarseTimer } from '../../src/util/coarse-timer.ts'
import { startPeer, stopPeers, type TestPeer } from './helpers.ts'

const GiB = 1024 ** 3
const stallTimer = new CoarseTimer(250)

function wire(raw: RawStream): WireStream {
  return new WireStream(raw, { budget: 1 << 20, signal: AbortSignal.timeout(5000), stallMs: 5000, stallTimer })
}

function varint(n: number): Uint8Array {
  const out: number[] = []
  for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80)
  return Uint8Array.from([...out, n])
}

/** Mallory answers every request on `protocol` with `reply` (after reading nothing), then closes. */
async function mallory(node: PeerNode, protocol: string, reply: Uint8Array[]): Promise<void> {
  await node.unhandle(protocol)
  await node.handle(protocol, (raw) => {
    const w = wire(raw)
    void (async () => {
      for (const part of reply) await w.write(part)
      await w.closeWrite()
    })().catch(() => {})
  })
}

describe('a hostile server', () => {
  let dataDir: string
  let evil: PeerNode
  let victim: TestPeer
  const buildId = crypto.randomUUID()

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'snapswarm-evil-'))
    evil = await createPeerNode({ dataDir })
    await evil.start()
    victim = await startPeer({ bootstrap: evil.addrs() })
  })
  after(async () => {
    await stopPeers(victim)
    await evil.stop()
    await rm(dataDir, { recursive: true, force: true })
    stallTimer.stop()
  })

  it('claiming a 1 GiB header is refused at the length prefix, nothing allocated', async () => {
    await mallory(evil, PROTOCOL_HEADER, [varint(GiB)])
    const before = process.memoryUsage().arrayBuffers
    await assert.rejects(victim.client.getHeader(evil.peerId, buildId, 'memfile'), LimitError)
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 ** 2)
  })

  it('a length prefix longer than 5 bytes is refused', async () => {
    await mallory(evil, PROTOCOL_HEADER, [Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])])
    await assert.rejects(victim.client.getHeader(evil.peerId, buildId, 'memfile'), PeerProtocolError)
  })

  it('frame lengths that differ from the request are refused', async () => {
    const res = FramesResponse.encode({ status: Status.OK, lengths: [GiB] })
    await mallory(evil, PROTOCOL_FRAMES, [varint(res.byteLength), res])
    await assert.rejects(victim.client.getFrames(evil.peerId, buildId, 'memfile', 'zstd', [{ startC: 0, sizeC: 100 }]), PeerProtocolError)
  })

  it('more bytes than were asked for abort the stream', async () => {
    const res = FramesResponse.encode({ status: Status.OK, lengths: [100] })
    await mallory(evil, PROTOCOL_FRAMES, [varint(res.byteLength), res, new Uint8Array(100_000)])
    // The extra bytes may arrive with the frame or after it was read: either the budget trips or the
    // exchange completed with exactly the bytes asked for; never a result longer than requested.
    const r = await victim.client.getFrames(evil.peerId, buildId, 'memfile', 'zstd', [{ startC: 0, sizeC: 100 }]).catch((e: Error) => e)
    if (r instanceof Error) assert.ok(r instanceof LimitError, r.message)
    else assert.ok(r.status === 'OK' && r.frames[0].byteLength === 100)
  })

  it('a truncated frame is an error, never a short result', async () => {
    const res = FramesResponse.encode({ status: Status.OK, lengths: [1000] })
    await mallory(evil, PROTOCOL_FRAMES, [varint(res.byteLength), res, new Uint8Array(10)])
    await assert.rejects(victim.client.getFrames(evil.peerId, buildId, 'memfile', 'zstd', [{ startC: 0, sizeC: 1000 }]), PeerProtocolError)
  })

  it('a frame sent with a header that was not asked for is refused', async () => {
    const res = HeaderResponse.encode({ status: Status.OK, header: new Uint8Array(3), pending: true, frameStartC: 0, frameSizeC: 100 })
    await mallory(evil, PROTOCOL_HEADER, [varint(res.byteLength), res, new Uint8Array(100)])
    await assert.rejects(victim.client.getHeader(evil.peerId, buildId, 'memfile'), PeerProtocolError)
  })

  it('a frame sent with a header that claims more than a frame may hold is refused before anything is allocated', async () => {
    const res = HeaderResponse.encode({ status: Status.OK, header: new Uint8Array(3), pending: true, frameStartC: 0, frameSizeC: 2 ** 32 - 1 })
    await mallory(evil, PROTOCOL_HEADER, [varint(res.byteLength), res])
    const before = process.memoryUsage().arrayBuffers
    await assert.rejects(victim.client.getHeader(evil.peerId, buildId, 'memfile', { firstReadAt: 0 }), PeerProtocolError)
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 ** 2)
  })

  it('a truncated frame sent with a header is an error, never a short frame', async () => {
    const res = HeaderResponse.encode({ status: Status.OK, header: new Uint8Array(3), pending: true, frameStartC: 0, frameSizeC: 1000 })
    await mallory(evil, PROTOCOL_HEADER, [varint(res.byteLength), res, new Uint8Array(10)])
    await assert.rejects(victim.client.getHeader(evil.peerId, buildId, 'memfile', { firstReadAt: 0 }), PeerProtocolError)
  })

  it('an OK header response without a status is refused', async () => {
    const res = HeaderResponse.encode({ status: Status.STATUS_UNSPECIFIED, header: new Uint8Array(3), pending: false })
    await mallory(evil, PROTOCOL_HEADER, [varint(res.byteLength), res])
    await assert.rejects(victim.client.getHeader(evil.peerId, buildId, 'memfile'), PeerProtocolError)
  })
})

describe('a hostile client', () => {
  let a: TestPeer
  let dataDir: string
  let evil: PeerNode
  const registry = createRegistry()

  before(async () => {
    a = await startPeer({ registry })
    dataDir = await mkdtemp(join(tmpdir(), 'snapswarm-evil-'))
    evil = await createPeerNode({ dataDir })
    await evil.start()
    await evil.dial(a.addrs()[0])
  })
  after(async () => {
    await stopPeers(a)
    await evil.stop()
    await rm(dataDir, { recursive: true, force: true })
  })

  async function send(parts: Uint8Array[]): Promise<unknown> {
    const w = wire(await evil.openStream(a.peerId, PROTOCOL_FRAMES, AbortSignal.timeout(2000)))
    for (const p of parts) await w.write(p)
    return w.readExact(1).then(
      () => 'answered',
      (err: unknown) => err,
    )
  }

  it('a 1 GiB request length is refused: the stream is reset, the provider never asked', async () => {
    const outcome = await send([varint(GiB), new Uint8Array(1000)])
    assert.ok(outcome instanceof Error, `expected the stream to fail, got ${String(outcome)}`)
    assert.equal(a.provider.calls, 0)
    const served = await registry.getSingleMetricAsString('snapswarm_peer_served_total')
    assert.match(served, /protocol="frames",status="error"\} 1/)
  })

  it('a batch beyond the frame limits is refused before the provider is asked', async () => {
    const { GetFrames, Kind } = await import('../../protocols/snapswarm.js')
    const id = Uint8Array.from(Buffer.from(crypto.randomUUID().replaceAll('-', ''), 'hex'))
    const many = GetFrames.encode({ buildId: id, kind: Kind.MEMFILE, frames: Array.from({ length: 1000 }, () => ({ startC: 0, sizeC: 1 })) })
    assert.ok((await send([varint(many.byteLength), many])) instanceof Error)
    const huge = GetFrames.encode({ buildId: id, kind: Kind.MEMFILE, frames: [{ startC: 0, sizeC: 2 ** 31 }] })
    assert.ok((await send([varint(huge.byteLength), huge])) instanceof Error)
    assert.equal(a.provider.calls, 0)
  })
})
