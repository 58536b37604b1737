/**
 * BENCH=announce: how fast cluster membership forms and announcements reach every member.
 * 16 nodes, each its own process (bench/announce-child.ts: the real peer layer, TCP on 127.0.0.1,
 * Noise with a cluster key, yamux, membership, announcements), started as a chain, each bootstrapping
 * to the previous one: the worst case for discovery. Figures:
 * - time for the chain to become a full mesh (after the last node is ready);
 * - announcement propagation: a node announces a new build (pending), then moves it to uploaded; the
 *   time from the announce call to each other node's directory showing it (both clocks are this
 *   machine's), over many rounds and every receiver: p50, p99, max. Baseline: the same measurement
 *   between 2 nodes in the same run (one direct push);
 * - a late joiner: time from its start to knowing every build the members announce.
 * The bound stated in docs/ARCHITECTURE.md ("Membership") comes from here.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { writeClusterKey } from '../src/p2p/admission.ts'
import { emit } from './common.ts'
import { quantile } from './lib/swarm.ts'

const NODES = Number(process.env.ANNOUNCE_NODES ?? 16)
const ROUNDS = Number(process.env.ANNOUNCE_ROUNDS ?? 40)
const JOIN_BUILDS = 50
const CHILD = fileURLToPath(new URL('./announce-child.ts', import.meta.url))

interface Seen {
  at: number
  peer: string
  buildId: string
  state: string
  t: number
}

interface Child {
  peerId: string
  addrs: string[]
  readyAt: number
  proc: ChildProcess
  /** Every directory change this node saw, and when. */
  seen: Seen[]
  announced: Map<string, number>
  send(cmd: Record<string, unknown>): void
  connected(): Promise<string[]>
}

interface Cluster {
  nodes: Child[]
  add(bootstrap: string[]): Promise<Child>
  close(): Promise<void>
}

async function newCluster(): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-bench-announce-'))
  const key = join(dir, 'cluster.key')
  await writeClusterKey(key)
  const nodes: Child[] = []
  return {
    nodes,
    async add(bootstrap) {
      const c = await startChild(join(dir, `n${nodes.length}`), key, bootstrap)
      nodes.push(c)
      return c
    },
    async close() {
      for (const n of nodes) n.proc.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    },
  }
}

function startChild(dataDir: string, key: string, bootstrap: string[]): Promise<Child> {
  const proc = spawn(process.execPath, [CHILD, dataDir, key, ...bootstrap], { stdio: ['pipe', 'pipe', 'inherit'] })
  const seen: Seen[] = []
  const announced = new Map<string, number>()
  const peersWaiters: ((p: string[]) => void)[] = []
  return new Promise((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`announce child exited with ${code} before ready`)))
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const e = JSON.parse(line) as Record<string, unknown>
      if (e.event === 'seen') seen.push({ at: seen.length, peer: String(e.peer), buildId: String(e.buildId), state: String(e.state), t: Number(e.t) })
      else if (e.event === 'announced') announced.set(`${e.buildId}/${e.state}`, Number(e.t))
      else if (e.event === 'peers') peersWaiters.shift()?.(e.connected as string[])
      else if (e.event === 'ready') {
        resolve({
          peerId: String(e.peerId),
          addrs: e.addrs as string[],
          readyAt: Number(e.t),
          proc,
          seen,
          announced,
          send: (cmd) => void proc.stdin!.write(`${JSON.stringify(cmd)}\n`),
          connected: () =>
            new Promise((r) => {
              peersWaiters.push(r)
              proc.stdin!.write(`${JSON.stringify({ peers: true })}\n`)
            }),
        })
      }
    })
  })
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 120_000): Promise<void> {
  const end = performance.now() + ms
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function fullMesh(nodes: Child[]): Promise<boolean> {
  for (const n of nodes) {
    const c = new Set(await n.connected())
    if (!nodes.every((m) => m === n || c.has(m.peerId))) return false
  }
  return true
}

/** A chain of `n` nodes; resolves with the ms from the last one ready to a full mesh. */
async function chain(c: Cluster, n: number): Promise<number> {
  for (let i = 0; i < n; i++) await c.add(i === 0 ? [] : [c.nodes[i - 1].addrs[0]])
  const t0 = c.nodes[n - 1].readyAt
  await until('a full mesh', () => fullMesh(c.nodes))
  return performance.timeOrigin + performance.now() - t0
}

const seenAt = (n: Child, peer: string, buildId: string, state: string): number | undefined => n.seen.find((s) => s.peer === peer && s.buildId === buildId && s.state === state)?.t

/** Per round: one node announces a build pending, then uploaded; each other node's delay (ms). */
async function propagation(nodes: Child[], rounds: number): Promise<number[]> {
  const times: number[] = []
  for (let r = 0; r < rounds; r++) {
    const origin = nodes[r % nodes.length]
    const receivers = nodes.filter((n) => n !== origin)
    const buildId = randomUUID()
    for (const state of ['pending', 'uploaded']) {
      origin.send({ announce: { buildId, state } })
      await until(`${state} on every node`, () => receivers.every((n) => seenAt(n, origin.peerId, buildId, state) !== undefined), 30_000)
      const t0 = origin.announced.get(`${buildId}/${state}`)!
      for (const n of receivers) times.push(seenAt(n, origin.peerId, buildId, state)! - t0)
    }
    origin.send({ withdraw: buildId })
  }
  return times
}

/** A node joining late: ms from its start until it knows every build the members announce. */
async function lateJoiner(c: Cluster): Promise<number> {
  const announced: { origin: Child; id: string }[] = []
  for (let i = 0; i < JOIN_BUILDS; i++) {
    const origin = c.nodes[i % c.nodes.length]
    const id = randomUUID()
    announced.push({ origin, id })
    origin.send({ announce: { buildId: id, state: 'pending' } })
  }
  const joiner = await c.add([c.nodes[0].addrs[0]])
  await until('the joiner to know every build', () => announced.every((a) => seenAt(joiner, a.origin.peerId, a.id, 'pending') !== undefined))
  return Math.max(...announced.map((a) => seenAt(joiner, a.origin.peerId, a.id, 'pending')!)) - joiner.readyAt
}

export async function announceBench(): Promise<void> {
  const pair = await newCluster()
  let baseline: number[]
  try {
    await chain(pair, 2)
    baseline = await propagation(pair.nodes, ROUNDS)
  } finally {
    await pair.close()
  }
  const c = await newCluster()
  try {
    emit(`membership_chain${NODES}_full_mesh_ms`, await chain(c, NODES), 'ms', null)
    const times = await propagation(c.nodes, ROUNDS)
    emit(`announce_${NODES}nodes_p50_ms`, quantile(times, 0.5), 'ms', quantile(baseline, 0.5))
    emit(`announce_${NODES}nodes_p99_ms`, quantile(times, 0.99), 'ms', quantile(baseline, 0.99), 'stated bound: 1 s')
    emit(`announce_${NODES}nodes_max_ms`, Math.max(...times), 'ms', Math.max(...baseline))
    emit(`announce_late_joiner_${JOIN_BUILDS}builds_ms`, await lateJoiner(c), 'ms', null)
  } finally {
    await c.close()
  }
}
