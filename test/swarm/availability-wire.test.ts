/**
 * The have protocol over real libp2p peers on 127.0.0.1: a node's availability (a file opened, a
 * frame being fetched, a frame held) reaches its peers as full and delta messages, a peer that
 * connects later gets the full state, a departed peer is forgotten; hostile messages (garbage, an
 * index past the table, an oversized one) are dropped, counted and logged, never applied.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { FrameTable } from '../../src/format/frame-table.ts'
import { createRegistry, type Registry } from '../../src/obs/metrics.ts'
import { HaveService, PROTOCOL_HAVE } from '../../src/p2p/content/have.ts'
import { WireStream } from '../../src/p2p/wire/stream.ts'
import { SwarmAvailability } from '../../src/swarm/availability.ts'
import { encodeHave, MAX_HAVE_BYTES } from '../../src/swarm/have-message.ts'
import { CoarseTimer } from '../../src/util/coarse-timer.ts'
import { startPeer, stopPeers, type TestPeer, waitFor } from '../p2p/helpers.ts'

const BUILD = '0b5a4c1e-3f2d-4e6a-9b8c-7d6e5f4a3b2c'
const table = FrameTable.fromSizes('zstd', Array.from({ length: 12 }, () => ({ sizeU: 2 << 20, sizeC: 5000 })))
const ref = (i: number) => ({ buildId: BUILD, kind: 'memfile' as const, codec: 'zstd' as const, startC: table.frames[i].startC, sizeC: table.frames[i].sizeC })

interface Side {
  peer: TestPeer
  swarm: SwarmAvailability
  have: HaveService
  registry: Registry
}

async function side(bootstrap: string[] = []): Promise<Side> {
  const peer = await startPeer({ bootstrap })
  const swarm = new SwarmAvailability(peer.peerId)
  const registry = createRegistry()
  const have = new HaveService(peer.node, swarm, { registry, refreshMs: 300 })
  await have.start()
  return { peer, swarm, have, registry }
}

async function counted(registry: Registry, result: string): Promise<number> {
  const text = await registry.metrics()
  const m = text.match(new RegExp(`snapswarm_have_messages_total\\{direction="received",result="${result}"\\} (\\d+)`))
  return m ? Number(m[1]) : 0
}

/** Send raw bytes as one length-prefixed message on the have protocol. */
async function sendRaw(from: TestPeer, to: string, bytes: Uint8Array): Promise<void> {
  const signal = AbortSignal.timeout(5000)
  const timer = new CoarseTimer(250)
  try {
    const wire = new WireStream(await from.node.openStream(to, PROTOCOL_HAVE, signal), { budget: 0, signal, stallMs: 5000, stallTimer: timer })
    await wire.writeMessage(bytes).catch(() => {})
    await wire.closeWrite().catch(() => {})
    wire.finish()
  } finally {
    timer.stop()
  }
}

describe('have protocol', () => {
  let a: Side
  let b: Side
  before(async () => {
    a = await side()
    b = await side(a.peer.addrs())
  })
  after(async () => {
    await Promise.allSettled([a?.have.stop(), b?.have.stop()])
    await stopPeers(...[a?.peer, b?.peer].filter((p): p is TestPeer => p !== undefined))
  })

  it('a file opened, a frame fetched, a frame held: each reaches the peer', async () => {
    a.swarm.register(BUILD, 'memfile', table)
    b.swarm.register(BUILD, 'memfile', table)
    const atB = b.swarm.locate(ref(5))!
    const view = () => b.swarm.candidates(atB, [a.peer.peerId])[0]
    await waitFor(() => view() !== undefined, 5000, 'B to learn that A reads the file')
    assert.deepEqual(b.swarm.members(atB, [a.peer.peerId]), [b.peer.peerId, a.peer.peerId])
    a.swarm.startFetching(a.swarm.locate(ref(5))!)
    await waitFor(() => view()?.fetching === true, 5000, 'B to see A fetching frame 5')
    a.swarm.arrived(ref(5), new Uint8Array(5000))
    await waitFor(() => view()?.holds === true && view()?.fetching === false, 5000, 'B to see A hold frame 5')
  })

  it('a peer that connects later gets the full state (the refresh makes good a push sent before it listened); a departed one is forgotten', async () => {
    const c = await side(a.peer.addrs())
    try {
      c.swarm.register(BUILD, 'memfile', table)
      const atC = c.swarm.locate(ref(5))!
      await waitFor(() => c.swarm.candidates(atC, [a.peer.peerId])[0]?.holds === true, 5000, 'C to learn what A holds')
    } finally {
      await c.have.stop()
      await stopPeers(c.peer)
    }
    // A forgets C once it is gone (disconnect event).
    await waitFor(() => !a.peer.node.connectedPeers().includes(c.peer.peerId), 5000, 'C to disconnect')
    assert.deepEqual(a.swarm.candidates(a.swarm.locate(ref(5))!, [c.peer.peerId]), [])
  })

  it('deltas go only to peers that read the file; a new reader gets the full state of it at once', async () => {
    const d = await side(a.peer.addrs())
    try {
      await waitFor(() => a.peer.node.connectedPeers().includes(d.peer.peerId), 5000, 'D to connect')
      const atB = b.swarm.locate(ref(9))!
      const shapes: string[] = []
      const apply = d.swarm.apply.bind(d.swarm)
      d.swarm.apply = (peer, m) => {
        shapes.push(m.shape)
        apply(peer, m)
      }
      a.swarm.startFetching(a.swarm.locate(ref(9))!)
      await waitFor(() => b.swarm.candidates(atB, [a.peer.peerId])[0]?.fetching === true, 5000, 'B to see A fetching frame 9')
      assert.equal(shapes.includes('delta'), false, 'D, which does not read the file, got no delta (full refreshes only)')
      // D opens the file: A and B send it their state of the file (at once, or at the latest at the next refresh).
      d.swarm.register(BUILD, 'memfile', table)
      const atD = d.swarm.locate(ref(9))!
      await waitFor(() => d.swarm.candidates(atD, [a.peer.peerId])[0]?.fetching === true, 5000, 'D to learn A fetches frame 9')
    } finally {
      await d.have.stop()
      await stopPeers(d.peer)
    }
  })

  it('hostile messages are dropped and counted, never applied', async () => {
    const atB = b.swarm.locate(ref(7))!
    const before = await counted(b.registry, 'bad')
    const good = Buffer.from(encodeHave({ buildId: BUILD, kind: 'memfile', tableId: atB.file.tableId, frameCount: 12, shape: 'delta', held: [7], fetching: [], done: [] }))
    const pastTable = Buffer.from(good)
    pastTable.writeUInt32BE(12, 43) // index 12 of a 12-frame table
    await sendRaw(a.peer, b.peer.peerId, pastTable)
    await sendRaw(a.peer, b.peer.peerId, new Uint8Array([1, 2, 3]))
    await sendRaw(a.peer, b.peer.peerId, new Uint8Array(MAX_HAVE_BYTES + 1))
    const deadline = Date.now() + 5000
    while ((await counted(b.registry, 'bad')) < before + 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    assert.equal(await counted(b.registry, 'bad'), before + 3)
    assert.equal(b.swarm.candidates(atB, [a.peer.peerId])[0].holds, false, 'frame 7 was never marked held')
    // The connection survives: a good message still gets through.
    await sendRaw(a.peer, b.peer.peerId, good)
    await waitFor(() => b.swarm.candidates(atB, [a.peer.peerId])[0].holds, 5000, 'the good message to apply')
  })
})
