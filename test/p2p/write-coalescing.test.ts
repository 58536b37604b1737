/** One socket write per batch (src/p2p/write-coalescing.ts): applied to libp2p's TCP connections, backpressure kept. */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type Socket, connect } from 'node:net'
import { describe, it } from 'node:test'
import { Uint8ArrayList } from 'uint8arraylist'
import { coalescedSend, writeCoalescingStats } from '../../src/p2p/write-coalescing.ts'
import { equalBytes, startPeer, stopPeers, waitFor } from './helpers.ts'

/** A connected loopback socket pair; `received` collects what the far end reads. */
async function socketPair(): Promise<{ local: Socket; remote: Socket; received: Buffer[]; close(): void }> {
  const received: Buffer[] = []
  let remote!: Socket
  const server = createServer((s) => {
    remote = s
    s.on('data', (d: Buffer) => received.push(d))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const local = connect((server.address() as { port: number }).port, '127.0.0.1')
  await once(server, 'connection')
  if (local.connecting) await once(local, 'connect')
  return {
    local,
    remote,
    received,
    close() {
      local.destroy()
      remote.destroy()
      server.close()
    },
  }
}

function countWrites(socket: Socket): { writes: number; writevs: number } {
  const counts = { writes: 0, writevs: 0 }
  const s = socket as unknown as { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void }
  const write = s._write.bind(socket)
  const writev = s._writev.bind(socket)
  s._write = (...a) => {
    counts.writes++
    write(...a)
  }
  s._writev = (...a) => {
    counts.writevs++
    writev(...a)
  }
  return counts
}

describe('write coalescing', () => {
  it("applies to libp2p's TCP connections on both sides", async () => {
    const before = { ...writeCoalescingStats }
    const a = await startPeer()
    const b = await startPeer({ bootstrap: a.addrs() })
    try {
      const { buildId, ranges, data } = a.provider.addBuild('memfile', 4, 256 * 1024)
      const res = await b.client.getFrames(a.peerId, buildId, 'memfile', 'zstd', ranges)
      assert.ok(res.status === 'OK' && equalBytes(Buffer.concat(res.frames), data))
      assert.equal(writeCoalescingStats.applied - before.applied, 2, 'dialler and listener each coalesce')
      assert.equal(writeCoalescingStats.skipped, before.skipped, '@libp2p/tcp no longer exposes its socket: coalescing is off')
    } finally {
      await stopPeers(a, b)
    }
  })

  it('a Noise message of three buffers leaves in one writev', async () => {
    const pair = await socketPair()
    try {
      const counts = countWrites(pair.local)
      const parts = [Uint8Array.of(0xff, 0xef), new Uint8Array(randomBytes(65519)), new Uint8Array(randomBytes(16))]
      const res = coalescedSend(pair.local, new Uint8ArrayList(...parts))
      assert.equal(res.sentBytes, 2 + 65519 + 16)
      await Promise.resolve() // the socket stays corked until this synchronous run ends
      assert.deepEqual(counts, { writes: 0, writevs: 1 })
      if (!res.canSendMore) await once(pair.local, 'drain')
      await waitFor(() => pair.received.reduce((n, b) => n + b.byteLength, 0) >= res.sentBytes, 30_000, 'every byte at the far end')
      assert.ok(equalBytes(Buffer.concat(pair.received), Buffer.concat(parts)))
    } finally {
      pair.close()
    }
  })

  it('batches sent in the same synchronous run (window updates for each frame of one TCP read) leave in one writev', async () => {
    const pair = await socketPair()
    try {
      const counts = countWrites(pair.local)
      const updates = Array.from({ length: 8 }, () => [Uint8Array.of(0, 28), new Uint8Array(randomBytes(12)), new Uint8Array(randomBytes(16))])
      for (const parts of updates) coalescedSend(pair.local, new Uint8ArrayList(...parts))
      assert.deepEqual(counts, { writes: 0, writevs: 0 }, 'nothing leaves before the run ends')
      await Promise.resolve()
      assert.deepEqual(counts, { writes: 0, writevs: 1 })
      const sent = Buffer.concat(updates.flat())
      await waitFor(() => pair.received.reduce((n, b) => n + b.byteLength, 0) >= sent.byteLength, 30_000, 'every byte at the far end')
      assert.ok(equalBytes(Buffer.concat(pair.received), sent))
    } finally {
      pair.close()
    }
  })

  it('keeps backpressure: canSendMore is false only when a drain will follow, and no byte is lost', async () => {
    const pair = await socketPair()
    try {
      pair.remote.pause() // the far end stops reading: the kernel buffers fill, the socket must queue
      const sent: Uint8Array[] = []
      let drains = 0
      for (let round = 0; round < 64; round++) {
        const batch = Array.from({ length: 16 }, () => new Uint8Array(randomBytes(64 * 1024)))
        sent.push(...batch)
        const res = coalescedSend(pair.local, new Uint8ArrayList(...batch))
        assert.equal(res.sentBytes, 16 * 64 * 1024)
        if (!res.canSendMore) {
          assert.ok(pair.local.writableNeedDrain, 'canSendMore false without a pending drain would stall the connection')
          if (drains === 0) pair.remote.resume()
          await once(pair.local, 'drain')
          drains++
        }
      }
      assert.ok(drains > 0, 'the test never hit backpressure')
      const total = sent.reduce((n, b) => n + b.byteLength, 0)
      await waitFor(() => pair.received.reduce((n, b) => n + b.byteLength, 0) >= total, 30_000, 'every byte at the far end')
      assert.ok(equalBytes(Buffer.concat(pair.received), Buffer.concat(sent)))
    } finally {
      pair.close()
    }
  })
})
