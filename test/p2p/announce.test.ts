/** Announcements: push on change and on connect, refresh keeps entries, expiry drops them, stop withdraws. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type DirectoryChange, PeerDirectory } from '../../src/p2p/announce/directory.ts'
import type { AnnouncedState } from '../../src/p2p/wire/messages.ts'
import { startPeer, stopPeers, waitFor } from './helpers.ts'

const build = (state: AnnouncedState, buildId = crypto.randomUUID()) => ({ buildId, state, memfileSize: 1 << 30, rootfsSize: 1 << 28 })

describe('PeerDirectory', () => {
  it('orders pending announcers first and reports state changes and withdrawals', () => {
    const dir = new PeerDirectory()
    const changes: DirectoryChange[] = []
    const off = dir.subscribe((c) => changes.push(c))
    const id = crypto.randomUUID()
    dir.replace('peerA', [build('uploaded', id)], 60_000)
    dir.replace('peerB', [build('pending', id)], 60_000)
    assert.deepEqual(
      dir.peersFor(id).map((e) => [e.peer, e.state]),
      [
        ['peerB', 'pending'],
        ['peerA', 'uploaded'],
      ],
    )
    dir.replace('peerB', [build('uploaded', id)], 60_000) // pending → uploaded: the switchover signal
    dir.replace('peerB', [build('uploaded', id)], 60_000) // a refresh without change is not reported
    dir.removePeer('peerA')
    off()
    dir.replace('peerB', [], 0)
    assert.deepEqual(
      changes.map((c) => [c.peer, c.previous, c.current]),
      [
        ['peerA', undefined, 'uploaded'],
        ['peerB', undefined, 'pending'],
        ['peerB', 'pending', 'uploaded'],
        ['peerA', 'uploaded', undefined],
      ],
    )
    assert.deepEqual(dir.peersFor(id), [])
    dir.clear()
  })

  it('orders a failed origin last and reports pending → failed', () => {
    const dir = new PeerDirectory()
    const changes: DirectoryChange[] = []
    dir.subscribe((c) => changes.push(c))
    const id = crypto.randomUUID()
    dir.replace('origin', [build('pending', id)], 60_000)
    dir.replace('cache', [build('cached', id)], 60_000)
    dir.replace('origin', [build('failed', id)], 60_000)
    assert.deepEqual(
      dir.peersFor(id).map((e) => [e.peer, e.state]),
      [
        ['cache', 'cached'],
        ['origin', 'failed'],
      ],
    )
    assert.deepEqual(changes.at(-1) && [changes.at(-1)!.previous, changes.at(-1)!.current], ['pending', 'failed'])
    dir.clear()
  })

  it('expires entries that are not refreshed, and reports it', async () => {
    const dir = new PeerDirectory()
    const gone: DirectoryChange[] = []
    dir.subscribe((c) => c.current === undefined && gone.push(c))
    const id = crypto.randomUUID()
    dir.replace('peerA', [build('pending', id)], 100)
    dir.replace('peerB', [build('pending', id)], 10_000)
    await waitFor(() => gone.length === 1, 1000, 'expiry')
    assert.equal(gone[0].peer, 'peerA')
    assert.deepEqual(
      dir.peersFor(id).map((e) => e.peer),
      ['peerB'],
    )
    dir.clear()
  })
})

describe('AnnounceService between nodes', () => {
  it('pushes on change, refreshes before expiry, withdraws on stop', async () => {
    const fast = { intervalMs: 100, ttlMs: 300 }
    const a = await startPeer({ announce: fast })
    const b = await startPeer({ announce: fast, bootstrap: a.addrs() })
    try {
      const changes: DirectoryChange[] = []
      b.directory.subscribe((c) => changes.push(c))
      const x = build('pending')
      // Count the announcements of x that reach b (each replaces a's entry for another TTL).
      let received = 0
      const replace = b.directory.replace.bind(b.directory)
      b.directory.replace = (peer, builds, ttlMs) => {
        if (peer === a.peerId && builds.some((e) => e.buildId === x.buildId)) received++
        replace(peer, builds, ttlMs)
      }
      a.announcer.announce(x)
      await waitFor(() => b.directory.peersFor(x.buildId).length === 1, 2000, 'announcement')
      assert.deepEqual(b.directory.peersFor(x.buildId)[0], { peer: a.peerId, ...x })

      // Ten refreshes sent at least 100 ms apart (timers never fire early) span three TTLs: every
      // look meanwhile finds the entry, kept alive by the refreshes alone.
      const seen = received
      await waitFor(() => {
        assert.equal(b.directory.peersFor(x.buildId).length, 1, `the entry expired after ${received - seen} refreshes`)
        return received - seen >= 10
      }, 30_000, 'ten refreshes')
      b.directory.replace = replace

      a.announcer.announce({ ...x, state: 'uploaded' })
      await waitFor(() => b.directory.peersFor(x.buildId)[0]?.state === 'uploaded', 2000, 'state change')
      assert.ok(changes.some((c) => c.previous === 'pending' && c.current === 'uploaded'))

      // A failed upload travels as its own state (wire FAILED), not as a withdrawal.
      const y = build('pending')
      a.announcer.announce(y)
      a.announcer.announce({ ...y, state: 'failed' })
      await waitFor(() => b.directory.peersFor(y.buildId)[0]?.state === 'failed', 2000, 'failed announcement')
      assert.deepEqual(b.directory.peersFor(y.buildId)[0], { peer: a.peerId, ...y, state: 'failed' })

      // Stopping the announcer alone (connection kept) must withdraw: the goodbye is the empty list.
      await a.announcer.stop()
      await waitFor(() => b.directory.peersFor(x.buildId).length === 0, 2000, 'withdrawal')
      assert.ok(b.node.isConnected(a.peerId))
    } finally {
      await stopPeers(a, b)
    }
  })

  it('pushes builds it originated first, pending first of all, cached ones last', async () => {
    const a = await startPeer()
    try {
      const [c1, p, u, c2] = [build('cached'), build('pending'), build('uploaded'), build('cached')]
      for (const x of [c1, p, u, c2]) a.announcer.announce(x)
      assert.deepEqual(
        a.announcer.announced().map((x) => x.buildId),
        [p, u, c1, c2].map((x) => x.buildId),
      )
    } finally {
      await stopPeers(a)
    }
  })

  it('a new peer learns existing announcements on connect; a silent peer expires', async () => {
    const a = await startPeer({ announce: { intervalMs: 60_000, ttlMs: 400 } })
    try {
      const x = build('cached')
      a.announcer.announce(x)
      const b = await startPeer({ bootstrap: a.addrs() })
      try {
        await waitFor(() => b.directory.peersFor(x.buildId).length === 1, 2000, 'push on connect')
        // a refreshes only every 60 s, so its 400 ms ttl runs out while still connected.
        await waitFor(() => b.directory.peersFor(x.buildId).length === 0, 2000, 'expiry')
      } finally {
        await stopPeers(b)
      }
    } finally {
      await stopPeers(a)
    }
  })
})
