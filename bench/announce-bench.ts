/**
 * BENCH=announce: how fast cluster membership forms and announcements reach every member.
 * 16 libp2p nodes (the real peer layer: TCP on 127.0.0.1, Noise with a cluster key, yamux, membership,
 * announcements) started as a chain, each bootstrapping to the previous one, the worst case for
 * discovery. Figures:
 * - time for the chain to become a full mesh (after the last node started);
 * - announcement propagation: a node announces a new build (pending), later moves it to uploaded; the
 *   time until each other node's directory shows it, over many rounds and every receiver: p50, p99, max.
 *   Baseline: the same measurement between 2 nodes in the same run (one direct push);
 * - a late joiner: time until a node that bootstraps to one member knows every announced build.
 * All nodes share this one process (one event loop), so the figures include their contention: a node
 * per process, as deployed, is not slower. The bound stated in docs/ARCHITECTURE.md comes from here.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSnapswarmPeer, type PeerContentProvider, type SnapswarmPeer } from '../src/p2p/index.ts'
import { emit } from './common.ts'
import { quantile } from './lib/swarm.ts'

const NODES = Number(process.env.ANNOUNCE_NODES ?? 16)
const ROUNDS = Number(process.env.ANNOUNCE_ROUNDS ?? 60)
const JOIN_BUILDS = 50

/** Serves nothing: the bench measures announcements, not content. */
const nothing: PeerContentProvider = {
  getHeader: async () => ({ status: 'NOT_AVAILABLE' }),
  getFrames: async () => ({ status: 'NOT_AVAILABLE' }),
  getBlob: async () => ({ status: 'NOT_AVAILABLE' }),
}

interface Cluster {
  peers: SnapswarmPeer[]
  key: Uint8Array
  dir: string
  add(bootstrap: string[]): Promise<SnapswarmPeer>
  close(): Promise<void>
}

async function newCluster(): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-bench-announce-'))
  const key = new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}`)
  const peers: SnapswarmPeer[] = []
  return {
    peers,
    key,
    dir,
    async add(bootstrap) {
      const p = await createSnapswarmPeer({
        dataDir: join(dir, `n${peers.length}`),
        provider: nothing,
        clusterKey: key,
        bootstrap,
        membership: { intervalMs: 1000 },
        announce: { intervalMs: 5000, ttlMs: 20_000 },
      })
      await p.start()
      peers.push(p)
      return p
    },
    async close() {
      await Promise.allSettled(peers.map((p) => p.stop()))
      await rm(dir, { recursive: true, force: true })
    },
  }
}

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = performance.now() + ms
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

function fullMesh(peers: SnapswarmPeer[]): boolean {
  return peers.every((p) => peers.every((q) => q === p || p.node.isConnected(q.peerId)))
}

/** A chain of `n` nodes; resolves with the ms from the last start to a full mesh. */
async function chain(c: Cluster, n: number): Promise<number> {
  for (let i = 0; i < n; i++) await c.add(i === 0 ? [] : [c.peers[i - 1].addrs()[0]])
  const t0 = performance.now()
  await until('a full mesh', () => fullMesh(c.peers))
  return performance.now() - t0
}

/** Per round: one node announces a build pending, then uploaded; every other node's arrival time (ms). */
async function propagation(peers: SnapswarmPeer[], rounds: number): Promise<number[]> {
  const times: number[] = []
  for (let r = 0; r < rounds; r++) {
    const origin = peers[r % peers.length]
    const receivers = peers.filter((p) => p !== origin)
    const buildId = randomUUID()
    for (const state of ['pending', 'uploaded'] as const) {
      const seen = new Map<SnapswarmPeer, number>()
      const offs = receivers.map((p) =>
        p.directory.subscribe((ch) => {
          if (ch.peer === origin.peerId && ch.buildId === buildId && ch.current === state && !seen.has(p)) seen.set(p, performance.now())
        }),
      )
      const t0 = performance.now()
      origin.announcer.announce({ buildId, state, memfileSize: 1 << 30, rootfsSize: 0 })
      await until(`${state} announcement on every node`, () => seen.size === receivers.length, 30_000)
      for (const off of offs) off()
      for (const t of seen.values()) times.push(t - t0)
    }
    origin.announcer.withdraw(buildId)
  }
  return times
}

/** A node joining late: ms until it knows every build the members announce. */
async function lateJoiner(c: Cluster): Promise<number> {
  const ids: string[] = []
  for (let i = 0; i < JOIN_BUILDS; i++) {
    const id = randomUUID()
    ids.push(id)
    c.peers[i % c.peers.length].announcer.announce({ buildId: id, state: 'pending', memfileSize: 1, rootfsSize: 0 })
  }
  await until('the builds announced everywhere', () => c.peers.every((p) => ids.every((id) => p.directory.peersFor(id).length > 0 || p.announcer.announced().some((a) => a.buildId === id))))
  const t0 = performance.now()
  const joiner = await c.add([c.peers[0].addrs()[0]])
  await until('the joiner to know every build', () => ids.every((id) => joiner.directory.peersFor(id).length > 0))
  return performance.now() - t0
}

export async function announceBench(): Promise<void> {
  const pair = await newCluster()
  let baseline: number[]
  try {
    await chain(pair, 2)
    baseline = await propagation(pair.peers, ROUNDS)
  } finally {
    await pair.close()
  }
  const c = await newCluster()
  try {
    const meshMs = await chain(c, NODES)
    emit(`membership_chain${NODES}_full_mesh_ms`, meshMs, 'ms', null)
    const times = await propagation(c.peers, ROUNDS)
    const p99Base = quantile(baseline, 0.99)
    emit(`announce_${NODES}nodes_p50_ms`, quantile(times, 0.5), 'ms', quantile(baseline, 0.5))
    emit(`announce_${NODES}nodes_p99_ms`, quantile(times, 0.99), 'ms', p99Base, 'stated bound: 1 s')
    emit(`announce_${NODES}nodes_max_ms`, Math.max(...times), 'ms', Math.max(...baseline))
    emit(`announce_late_joiner_${JOIN_BUILDS}builds_ms`, await lateJoiner(c), 'ms', null)
  } finally {
    await c.close()
  }
}

