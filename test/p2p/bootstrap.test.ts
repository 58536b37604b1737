/** Bootstrap peers: retried with capped exponential backoff until reachable, redialled after a drop. */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { Bootstrapper } from '../../src/p2p/bootstrap.ts'
import { startPeer, stopPeers, waitFor } from './helpers.ts'

describe('Bootstrapper', () => {
  it('backs off exponentially with jitter, up to the cap', () => {
    const b = new Bootstrapper([], { dial: async () => '', isConnected: () => false, onDisconnect: () => () => {} }, { minMs: 100, maxMs: 1000 })
    for (const [attempt, base] of [[1, 100], [2, 200], [3, 400], [4, 800], [5, 1000], [30, 1000]] as const) {
      const d = b.delayFor(attempt)
      assert.ok(d >= base * 0.75 && d <= base * 1.25, `attempt ${attempt}: ${d} ms`)
    }
  })

  it('keeps dialling an absent peer and stops when told to (on a fake clock)', async (t) => {
    // Mocked timers: retries happen only when the test moves the clock, so "no dial after stop" is
    // checked over ten seconds of clock, not a short real wait.
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const flush = async () => {
      for (let i = 0; i < 20; i++) await Promise.resolve()
    }
    let dials = 0
    const deps = {
      dial: async () => {
        dials++
        throw new Error('refused')
      },
      isConnected: () => false,
      onDisconnect: () => () => {},
    }
    const b = new Bootstrapper(['/ip4/127.0.0.1/tcp/1'], deps, { minMs: 20, maxMs: 40 })
    b.start()
    // Each retry waits at most 40 ms × 1.25 of jitter.
    for (let step = 0; step < 100 && dials < 4; step++) {
      await flush()
      t.mock.timers.tick(50)
    }
    await flush()
    assert.ok(dials >= 4, `retries: ${dials} dials`)
    b.stop()
    const n = dials
    t.mock.timers.tick(10_000)
    await flush()
    assert.equal(dials, n, 'no dial after stop')
  })

  it('reconnects to a bootstrap peer that restarts on the same address', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'snapswarm-boot-'))
    let a = await startPeer({ dataDir })
    const addr = a.addrs()[0]
    const b = await startPeer({ bootstrap: [addr], backoff: { minMs: 50, maxMs: 200 } })
    try {
      await a.stop()
      await waitFor(() => !b.node.isConnected(a.peerId), 3000, 'disconnect')
      // Same data dir = same identity; same port = the address b keeps dialling.
      a = await startPeer({ dataDir, listen: [addr.split('/p2p/')[0]] })
      assert.equal(a.addrs()[0], addr)
      await waitFor(() => b.node.isConnected(a.peerId), 5000, 'reconnect')
    } finally {
      await stopPeers(a, b)
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
