/**
 * Cluster membership over real libp2p nodes on 127.0.0.1: a node that reaches any one member learns
 * every other one and connects (chain and star), announcements then reach every member, a departed
 * member is forgotten and its builds are no longer offered; a stranger with another cluster key is
 * refused and both sides warn (once per interval); hostile member lists are bounded; (incarnation,
 * seq) ordering keeps a stale announcement from overriding a newer one.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import { after, describe, it } from 'node:test'
import pino from 'pino'
import { PeerDirectory } from '../../src/p2p/announce/directory.ts'
import { AnnounceService, isNewer } from '../../src/p2p/announce/service.ts'
import { MAX_MEMBERS } from '../../src/p2p/constants.ts'
import type { PeerHost } from '../../src/p2p/host.ts'
import { decodeMemberList, Membership, type MembershipHost, routableFirst } from '../../src/p2p/membership.ts'
import { RateLimitedLog } from '../../src/p2p/rate-limited-log.ts'
import { MemberList } from '../../protocols/snapswarm.js'
import type { Logger } from '../../src/obs/log.ts'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSnapswarmPeer, type SnapswarmPeerOptions } from '../../src/p2p/index.ts'
import { MemoryProvider, startPeer, stopPeers, type TestPeer, waitFor } from './helpers.ts'

const FAST = { membership: { intervalMs: 200, ttlMs: 1500 }, announce: { intervalMs: 300, ttlMs: 3000 } }
const build = (buildId = crypto.randomUUID()) => ({ buildId, state: 'pending' as const, memfileSize: 1 << 20, rootfsSize: 0 })

/** A logger whose lines are kept (parsed) for assertions. */
function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l))
      done()
    },
  })
  return { logger: pino({ level: 'debug' }, sink), lines }
}

function swarmKey(): Uint8Array {
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}`)
}

async function fullMesh(peers: TestPeer[], ms = 20_000): Promise<void> {
  await waitFor(() => peers.every((p) => peers.every((q) => q === p || p.node.isConnected(q.peerId))), ms, 'every node connected to every other')
}

describe('membership', () => {
  const all: TestPeer[] = []
  const keyOf = new Map<TestPeer, Uint8Array>()
  after(() => stopPeers(...all))

  async function cluster(n: number, bootstrapOf: (i: number, peers: TestPeer[]) => string, extra = {}): Promise<TestPeer[]> {
    const key = swarmKey()
    const peers: TestPeer[] = []
    for (let i = 0; i < n; i++) {
      const p = await startPeer({ clusterKey: key, ...FAST, ...extra, bootstrap: i === 0 ? [] : [bootstrapOf(i, peers)] })
      keyOf.set(p, key)
      peers.push(p)
      all.push(p)
    }
    return peers
  }

  it('a chain (each node bootstraps to the previous) becomes a full mesh, and an announcement on the last node reaches the first', async () => {
    const peers = await cluster(5, (i, ps) => ps[i - 1].addrs()[0])
    await fullMesh(peers)
    const b = build()
    peers[4].announcer.announce(b)
    await waitFor(() => peers.slice(0, 4).every((p) => p.directory.peersFor(b.buildId).some((e) => e.peer === peers[4].peerId)), 10_000, 'the announcement on every node')
    assert.deepEqual(
      peers[0].membership.members().map((m) => m.peer).sort(),
      peers.slice(1).map((p) => p.peerId).sort(),
    )
    await stopPeers(...peers)
  })

  it('a node joining late learns the current state of every member (the builds they announce) through one bootstrap member', async () => {
    const peers = await cluster(4, (_i, ps) => ps[0].addrs()[0])
    await fullMesh(peers)
    const builds = [build(), build(), build()]
    peers[1].announcer.announce(builds[0])
    peers[2].announcer.announce(builds[1])
    peers[3].announcer.announce({ ...builds[2], state: 'uploaded' })
    await waitFor(() => builds.every((b) => peers[0].directory.peersFor(b.buildId).length === 1), 10_000, 'the builds announced')
    const late = await startPeer({ clusterKey: keyOf.get(peers[0]), ...FAST, bootstrap: [peers[3].addrs()[0]] })
    all.push(late)
    await waitFor(() => builds.every((b) => late.directory.peersFor(b.buildId).length === 1), 10_000, 'the late joiner to know every build')
    assert.equal(late.directory.peersFor(builds[2].buildId)[0].state, 'uploaded')
    await fullMesh([...peers, late])
    await stopPeers(...peers, late)
  })

  it('members that learn of each other at once keep one connection per pair (the larger peer id waits before dialling)', async () => {
    // A chain started without waiting for each link: members learn of each other concurrently, from several sides.
    const key = swarmKey()
    const peers: TestPeer[] = []
    for (let i = 0; i < 12; i++) {
      const p = await unwaitedPeer(key, i === 0 ? [] : [peers[i - 1].addrs()[0]])
      peers.push(p)
      all.push(p)
    }
    await fullMesh(peers)
    const pairs = (peers.length * (peers.length - 1)) / 2
    const connections = peers.reduce((n, p) => n + p.node.connectionCount(), 0) / 2
    // One connection per pair; a dial race under load may still double a few, never most.
    assert.ok(connections <= pairs * 1.25, `${connections} connections for ${pairs} pairs`)
    await stopPeers(...peers)
  })

  it('a star (every node bootstraps to node 0) becomes a full mesh; a departed member is forgotten and its builds are not offered', async () => {
    const peers = await cluster(5, (_i, ps) => ps[0].addrs()[0])
    await fullMesh(peers)
    const b = build()
    peers[3].announcer.announce(b)
    await waitFor(() => peers[1].directory.peersFor(b.buildId).length === 1, 10_000, 'the announcement on a leaf')
    const gone = peers[3]
    await gone.node.stop() // no goodbye: the connection just ends
    await waitFor(() => peers[1].directory.peersFor(b.buildId).length === 0, 10_000, 'the departed node no longer offered')
    await waitFor(() => !peers[1].membership.members().some((m) => m.peer === gone.peerId), 15_000, 'the departed member forgotten')
    await stopPeers(...peers)
  })

  it('a stranger with another cluster key is refused and both sides warn, once per interval', async () => {
    const a = capturingLogger()
    const s = capturingLogger()
    const member = await startPeer({ clusterKey: swarmKey(), logger: a.logger, ...FAST, warnIntervalMs: 300 })
    all.push(member)
    // The stranger redials every 50-100 ms; each side writes one line per 300 ms, counting the rest.
    const stranger = await createStrangerBootstrapping(member.addrs()[0], s.logger, 300)
    all.push(stranger)
    const warned = (lines: Record<string, unknown>[], msg: string) => lines.filter((l) => l.level === 40 && String(l.msg).includes(msg))
    const heldBack = (lines: Record<string, unknown>[], msg: string) => warned(lines, msg).some((l) => Number(l.suppressed) > 0)
    await waitFor(() => heldBack(s.lines, 'cannot reach bootstrap peer'), 10_000, 'the stranger to warn, rate-limited')
    await waitFor(() => heldBack(a.lines, 'refused an inbound handshake'), 10_000, 'the member to warn, rate-limited')
    assert.equal(member.node.isConnected(stranger.peerId), false)
    for (const [lines, msg] of [
      [s.lines, 'cannot reach bootstrap peer'],
      [a.lines, 'refused an inbound handshake'],
    ] as const) {
      const times = warned(lines, msg).map((l) => Number(l.time))
      for (let i = 1; i < times.length; i++) assert.ok(times[i] - times[i - 1] >= 290, `${msg}: two lines ${times[i] - times[i - 1]} ms apart`)
    }
    await stopPeers(member, stranger)
  })

  it('a peer not on the allow-list is refused and the refusing node warns', async () => {
    const key = swarmKey()
    const a = capturingLogger()
    const friend = await startPeer({ clusterKey: key, ...FAST })
    all.push(friend)
    const member = await startPeer({ clusterKey: key, ...FAST, logger: a.logger, allowPeers: [friend.peerId] })
    all.push(member)
    const outsider = await startPeer({ clusterKey: key, ...FAST })
    all.push(outsider)
    // The outsider's side may see the handshake complete before the member's gater closes it.
    await outsider.node.dial(member.addrs()[0]).catch(() => {})
    await waitFor(() => a.lines.some((l) => l.level === 40 && String(l.msg).includes('not on the allow-list') && l.peer === outsider.peerId), 5000, 'the warning')
    await waitFor(() => !member.node.isConnected(outsider.peerId) && !outsider.node.isConnected(member.peerId), 5000, 'no connection left')
    await stopPeers(friend, member, outsider)
  })

  it('an unreachable bootstrap address is warned about', async () => {
    const c = capturingLogger()
    const p = await createStrangerBootstrapping('/ip4/127.0.0.1/tcp/1/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq', c.logger)
    all.push(p)
    await waitFor(() => c.lines.some((l) => l.level === 40 && String(l.msg).includes('cannot reach bootstrap peer')), 5000, 'the warning')
    await stopPeers(p)
  })
})

/** A started node that does not wait for its bootstrap connections (startPeer does). */
async function unwaitedPeer(clusterKey: Uint8Array, bootstrap: string[], extra: Partial<SnapswarmPeerOptions> = {}): Promise<TestPeer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'snapswarm-p2p-'))
  const provider = new MemoryProvider()
  const peer = await createSnapswarmPeer({ dataDir, provider, clusterKey, bootstrap, membership: { intervalMs: 1000 }, ...extra })
  await peer.start()
  return Object.assign(peer, { provider, dataDir })
}

/** A node bootstrapping to `addr` with a fresh cluster key, redialling every 50-100 ms. */
function createStrangerBootstrapping(addr: string, logger: Logger, warnIntervalMs?: number): Promise<TestPeer> {
  return unwaitedPeer(swarmKey(), [addr], { logger, warnIntervalMs, backoff: { minMs: 50, maxMs: 100, dialTimeoutMs: 2000 } })
}

describe('member lists from outside are bounded', () => {
  const fakeHost = (): MembershipHost & { dialed: string[] } => {
    const dialed: string[] = []
    return {
      peerId: '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq',
      dialed,
      handle: async () => {},
      unhandle: async () => {},
      openStream: async () => {
        throw new Error('no streams here')
      },
      connectedPeers: () => [],
      onPeerEvent: () => () => {},
      dial: async (addr) => {
        dialed.push(addr)
        throw new Error('unreachable')
      },
      isConnected: () => false,
      addrs: () => [],
    }
  }

  it('skips bad peer ids, bad or foreign addresses and itself; dials only well-formed members', async () => {
    const host = fakeHost()
    const m = new Membership(host, { warnIntervalMs: 60_000 })
    const good = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
    const other = '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK'
    m.learn(good, [
      { peerId: 'not a peer id', addrs: ['/ip4/127.0.0.1/tcp/9'] },
      { peerId: host.peerId, addrs: ['/ip4/127.0.0.1/tcp/9'] },
      { peerId: good, addrs: ['garbage', `/ip4/127.0.0.1/tcp/9/p2p/${other}`, `/ip4/127.0.0.1/tcp/${'9'.repeat(300)}`, '/ip4/127.0.0.1/tcp/9'] },
    ])
    assert.deepEqual(
      m.members().map((x) => [x.peer, x.addrs]),
      [[good, [`/ip4/127.0.0.1/tcp/9/p2p/${good}`]]],
    )
    await waitFor(() => host.dialed.length === 1, 2000, 'the one dial')
    assert.equal(host.dialed[0], `/ip4/127.0.0.1/tcp/9/p2p/${good}`)
    await m.stop()
  })

  it('a node lists its loopback addresses only when it has no other', () => {
    const id = '/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
    assert.deepEqual(routableFirst([`/ip4/127.0.0.1/tcp/7000${id}`, `/ip4/10.1.2.3/tcp/7000${id}`, `/ip6/::1/tcp/7000${id}`]), [`/ip4/10.1.2.3/tcp/7000${id}`])
    assert.deepEqual(routableFirst([`/ip4/127.0.0.1/tcp/7000${id}`]), [`/ip4/127.0.0.1/tcp/7000${id}`])
  })

  it('refuses a list with more members than MAX_MEMBERS, or more addresses per member than allowed', () => {
    const peerId = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
    const tooMany = MemberList.encode({ members: Array.from({ length: MAX_MEMBERS + 1 }, () => ({ peerId, addrs: [] })) })
    assert.throws(() => decodeMemberList(tooMany))
    const manyAddrs = MemberList.encode({ members: [{ peerId, addrs: Array.from({ length: 9 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`) }] })
    assert.throws(() => decodeMemberList(manyAddrs))
  })
})

describe('announcement order', () => {
  it('regression: a stale announcement (lower seq) never overrides a newer one; a restarted sender (later incarnation) is applied', () => {
    const dir = new PeerDirectory()
    const svc = new AnnounceService({} as PeerHost, dir)
    const id = crypto.randomUUID()
    const at = (state: 'pending' | 'uploaded') => [{ buildId: id, state, memfileSize: 1, rootfsSize: 0 }]
    assert.equal(svc.apply('origin', { incarnation: 100, seq: 5 }, at('uploaded'), 60_000), true)
    assert.equal(svc.apply('origin', { incarnation: 100, seq: 4 }, at('pending'), 60_000), false, 'older push ignored')
    assert.equal(svc.apply('origin', { incarnation: 100, seq: 5 }, at('pending'), 60_000), false, 'a replay ignored')
    assert.equal(dir.peersFor(id)[0].state, 'uploaded')
    // The origin restarted: its counter starts again from 1 in a later run.
    assert.equal(svc.apply('origin', { incarnation: 200, seq: 1 }, at('pending'), 60_000), true)
    assert.equal(dir.peersFor(id)[0].state, 'pending')
    assert.equal(svc.apply('origin', { incarnation: 100, seq: 99 }, at('uploaded'), 60_000), false, 'the old run never wins again')
    assert.equal(isNewer({ incarnation: 1, seq: 0 }, { incarnation: 0, seq: 1e9 }), true)
    dir.clear()
  })
})

describe('RateLimitedLog', () => {
  it('writes one line per key per interval and counts the suppressed ones', () => {
    const c = capturingLogger()
    const r = new RateLimitedLog(c.logger, 60_000)
    assert.equal(r.warn('a', { x: 1 }, 'first'), true)
    assert.equal(r.warn('a', { x: 2 }, 'again'), false)
    assert.equal(r.warn('b', { x: 3 }, 'other key'), true)
    assert.deepEqual(
      c.lines.map((l) => l.msg),
      ['first', 'other key'],
    )
    // Once the interval has passed, the next line says how many were held back.
    const zero = new RateLimitedLog(c.logger, -1)
    zero.warn('k', {}, 'one')
    assert.equal(zero.warn('k', {}, 'two'), true)
    assert.equal(c.lines.length, 4)
  })
})

describe('membership metrics', () => {
  it('counts known and connected members when scraped', async () => {
    const { createRegistry } = await import('../../src/obs/metrics.ts')
    const key = swarmKey()
    const registry = createRegistry()
    const a = await startPeer({ clusterKey: key, ...FAST, registry })
    const b = await startPeer({ clusterKey: key, ...FAST, bootstrap: [a.addrs()[0]] })
    const c = await startPeer({ clusterKey: key, ...FAST, bootstrap: [b.addrs()[0]] })
    try {
      await fullMesh([a, b, c])
      const text = await registry.metrics()
      assert.match(text, /snapswarm_cluster_members\{connected="true"\} 2/)
      assert.match(text, /snapswarm_cluster_members\{connected="false"\} 0/)
    } finally {
      await stopPeers(a, b, c)
    }
  })
})

describe('a hostile member', () => {
  it('a stranger named in a member list is dialled under the same admission: refused, and both sides warn', async () => {
    const { createPeerNode } = await import('../../src/p2p/node.ts')
    const { pushMessage } = await import('../../src/p2p/push.ts')
    const { CoarseTimer } = await import('../../src/util/coarse-timer.ts')
    const { PROTOCOL_MEMBERS } = await import('../../src/p2p/constants.ts')
    const { rm } = await import('node:fs/promises')
    const key = swarmKey()
    const v = capturingLogger()
    const s = capturingLogger()
    const victim = await startPeer({ clusterKey: key, logger: v.logger, ...FAST })
    const stranger = await startPeer({ clusterKey: swarmKey(), logger: s.logger, ...FAST })
    // A member (it has the key) that lists the stranger as if it were one of the cluster.
    const dataDir = await mkdtemp(join(tmpdir(), 'snapswarm-evil-'))
    const liar = await createPeerNode({ dataDir, clusterKey: key })
    const timer = new CoarseTimer(250)
    try {
      await liar.start()
      await liar.dial(victim.addrs()[0])
      const list = MemberList.encode({ members: [{ peerId: stranger.peerId, addrs: stranger.addrs() }] })
      await pushMessage(liar, victim.peerId, PROTOCOL_MEMBERS, list, { signal: AbortSignal.timeout(5000), stallMs: 5000, stallTimer: timer })
      const warned = (lines: Record<string, unknown>[], msg: string) => lines.some((l) => l.level === 40 && String(l.msg).includes(msg))
      await waitFor(() => warned(v.lines, 'cannot dial cluster member'), 10_000, 'the victim to warn about the refused dial')
      await waitFor(() => warned(s.lines, 'refused an inbound handshake'), 10_000, 'the stranger to warn about the handshake')
      assert.equal(victim.node.isConnected(stranger.peerId), false)
    } finally {
      timer.stop()
      await liar.stop()
      await stopPeers(victim, stranger)
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('regression: an oversized or over-long member list is refused (stream reset, a warning), nothing learned, nothing dialled', async () => {
    const { createPeerNode } = await import('../../src/p2p/node.ts')
    const { WireStream } = await import('../../src/p2p/wire/stream.ts')
    const { CoarseTimer } = await import('../../src/util/coarse-timer.ts')
    const { PROTOCOL_MEMBERS } = await import('../../src/p2p/constants.ts')
    const { rm } = await import('node:fs/promises')
    const log = capturingLogger()
    const victim = await startPeer({ logger: log.logger, ...FAST })
    const dataDir = await mkdtemp(join(tmpdir(), 'snapswarm-evil-'))
    const evil = await createPeerNode({ dataDir })
    const timer = new CoarseTimer(250)
    try {
      await evil.start()
      await evil.dial(victim.addrs()[0])
      const varint = (n: number) => {
        const out: number[] = []
        for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80)
        return Uint8Array.from([...out, n])
      }
      const fake = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
      const tooMany = MemberList.encode({ members: Array.from({ length: MAX_MEMBERS + 1 }, () => ({ peerId: fake, addrs: ['/ip4/127.0.0.1/tcp/9'] })) })
      for (const parts of [[varint(1024 ** 3), new Uint8Array(1000)], [varint(tooMany.byteLength), tooMany]]) {
        const w = new WireStream(await evil.openStream(victim.peerId, PROTOCOL_MEMBERS, AbortSignal.timeout(3000)), { budget: 1 << 20, signal: AbortSignal.timeout(5000), stallMs: 5000, stallTimer: timer })
        for (const p of parts) await w.write(p).catch(() => {})
        await w.closeWrite().catch(() => {})
      }
      await waitFor(() => log.lines.some((l) => l.level === 40 && String(l.msg).includes('bad member list')), 5000, 'the warning')
      assert.ok(!victim.membership.members().some((m) => m.peer === fake), 'nothing learned from a refused list')
      assert.ok(victim.node.isConnected(evil.peerId), 'the victim keeps running and connected')
    } finally {
      timer.stop()
      await evil.stop()
      await stopPeers(victim)
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
