/**
 * A discrete-event simulation of a swarm resuming one build, at frame granularity. Every node wants
 * every frame of the build, keeps `window` frame fetches in flight, and asks a `SimPolicy` (the
 * product's own selection code, see policy.ts) where each frame comes from: a peer that holds it, a
 * peer that is fetching it (the answer follows its arrival), the origin (pending case) or the bucket
 * (uploaded case). A node knows what the other members hold and fetch with one link latency of delay
 * (the "have" updates), so a decision is taken on a slightly stale view, as in the product. As in
 * the product, a node announces a frame in flight only when it fetches it itself (from the origin or
 * the bucket), not while it waits on a peer for it: so a node fetching a frame for a peer never finds
 * that peer among those to follow, and no two nodes wait on each other. The
 * policy sees a random sample of the holders and of the fetchers (`sample` each): the batching that
 * keeps 1,000 nodes tractable.
 *
 * The network: each node has a NIC (upload and download rates, one-way latency); a link is a FIFO
 * that transfers one frame after the other at its rate (a transfer occupies the sender's uplink and
 * the receiver's downlink; the slower of the two sets its pace). The bucket answers each request
 * after a first-byte latency at a per-request rate, with no aggregate limit (GCS scales out); the
 * receiver's downlink still bounds it. A received frame is decoded and verified on the receiver's
 * CPU (`cores` in parallel, ms per MiB of uncompressed data, measured on this machine), and only then
 * held and served on: no unverified frame is ever served.
 *
 * Time is in milliseconds. Every reservation is made at the event that causes it, so the clock only
 * moves forward.
 */
import { rng } from '../lib/rng.ts'
import { EventQueue } from './heap.ts'

export interface NetModel {
  /** NIC rate of a reader, bytes per second, each direction. */
  readonly nodeBps: number
  /** NIC rate of the origin, bytes per second (its uplink to peers). */
  readonly originBps: number
  /** One-way latency between two nodes, ms. */
  readonly latencyMs: number
  /** The bucket: time to first byte per request (ms) and rate per request (bytes/s). */
  readonly storageFirstByteMs: number
  readonly storageRequestBps: number
  /** Receiver CPU per MiB of uncompressed frame (decode + verify), ms; cores per node. */
  readonly cpuMsPerMiB: number
  readonly cores: number
}

export interface SimScenario {
  readonly nodes: number
  /** Frames of the build, their uncompressed and compressed size (all frames alike). */
  readonly frames: number
  readonly frameBytesU: number
  readonly frameBytesC: number
  /** pending: the origin holds the build; uploaded: the bucket does (and no origin). */
  readonly mode: 'pending' | 'uploaded'
  readonly net: NetModel
  /** Frame fetches each node keeps in flight. */
  readonly window: number
  /** Frames one node sends to peers at once; a request beyond it is answered BUSY (one round trip lost). */
  readonly serveCap: number
  /** Holders (and, apart, fetchers) of a frame shown to the policy at most: a random sample of those known. */
  readonly sample: number
  /** Node start times are spread uniformly over [0, startSpreadMs). */
  readonly startSpreadMs: number
  /**
   * What-if, not the product: when every peer of a plan answered BUSY, plan again after `backoffMs`
   * (at most `times` times) instead of going to the origin or the bucket at once.
   */
  readonly busyRetry?: { readonly times: number; readonly backoffMs: number }
  /** Explicit start time of each node (ms), instead of the spread. */
  readonly startTimes?: readonly number[]
  /** Frame order of each node: its own shuffle, or the file order for all. */
  readonly order: 'shuffled' | 'sequential'
  readonly seed: number
}

/** What the policy sees of one peer for one frame. */
export interface Candidate {
  readonly node: number
  /** Holds the frame verified (as its "have" said, one latency ago). */
  readonly holds: boolean
  /** Is fetching it (as announced one latency ago). */
  readonly fetching: boolean
  /** Requests from the asking node to this peer in flight now. */
  readonly load: number
}

export interface PlanInput {
  readonly me: number
  readonly frame: number
  readonly candidates: readonly Candidate[]
  /** Fetched on a peer's behalf: never handed on again. */
  readonly relayed: boolean
  readonly random: () => number
}

/** One step of a frame's source plan, as the product's selection orders them; `self` ends every plan. */
export type Step = { readonly kind: 'holder' | 'fetching' | 'owner'; readonly node: number } | { readonly kind: 'self' }

export interface SimPolicy {
  readonly name: string
  plan(input: PlanInput): readonly Step[]
}

export interface SimResult {
  readonly originBytes: number
  readonly storageBytes: number
  readonly storageRequests: number
  readonly peerBytes: number
  /** Bytes the busiest reader sent to peers. */
  readonly maxReaderServed: number
  /** Requests answered BUSY. */
  readonly busy: number
  /** Per node, ms from its start to its last verified frame. */
  readonly completionMs: number[]
  /** When the last node finished, ms from the first start. */
  readonly makespanMs: number
  readonly events: number
}

type Ev = { t: 'start'; node: number } | { t: 'verified'; node: number; frame: number; from: number } | { t: 'retry'; node: number; frame: number; relayed: boolean; tries: number }

const ORIGIN = -1
const STORAGE = -2
const MiB = 1024 * 1024
const NEVER = Number.POSITIVE_INFINITY

/** Run one scenario to completion. */
export function simulate(s: SimScenario, policy: SimPolicy): SimResult {
  return new Sim(s, policy).run()
}

class Sim {
  private readonly s: SimScenario
  private readonly policy: SimPolicy
  private readonly q = new EventQueue<Ev>()
  private readonly random: () => number
  /** Per node × frame: when it was verified there / when its fetch started (Infinity: not). */
  private readonly heldAt: Float64Array
  private readonly fetchAt: Float64Array
  /** Per node × frame: when it started fetching the frame itself, from the origin or the bucket (what it announces in flight). */
  private readonly selfAt: Float64Array
  /** Per frame: the nodes holding it, in the order they got it (so by time), and those fetching it now. */
  private readonly holders: number[][]
  private readonly fetchers: number[][]
  /** Nodes waiting for a frame a peer is fetching: key node*frames+frame. */
  private readonly waiters = new Map<number, number[]>()
  private readonly upFree: Float64Array
  private readonly downFree: Float64Array
  private readonly cpuFree: Float64Array
  /** Frames each node is sending (or owes) to peers now. */
  private readonly serving: Int32Array
  private readonly served: Float64Array
  /** Per node: requests in flight to each peer. */
  private readonly loads: Map<number, number>[]
  private readonly order: Int32Array[]
  private readonly next: Int32Array
  /** Fetches a node started for its own reading (its window); fetches made for a peer do not count. */
  private readonly active: Int32Array
  private readonly own: Uint8Array
  private readonly done: Int32Array
  private readonly startAt: Float64Array
  private readonly completion: number[]
  private originBytes = 0
  private originFree = 0
  private storageBytes = 0
  private storageRequests = 0
  private peerBytes = 0
  private busy = 0
  private events = 0

  constructor(s: SimScenario, policy: SimPolicy) {
    this.s = s
    this.policy = policy
    this.random = rng(s.seed)
    const cells = s.nodes * s.frames
    this.heldAt = new Float64Array(cells).fill(NEVER)
    this.fetchAt = new Float64Array(cells).fill(NEVER)
    this.selfAt = new Float64Array(cells).fill(NEVER)
    this.holders = Array.from({ length: s.frames }, () => [])
    this.fetchers = Array.from({ length: s.frames }, () => [])
    this.upFree = new Float64Array(s.nodes)
    this.downFree = new Float64Array(s.nodes)
    this.cpuFree = new Float64Array(s.nodes * s.net.cores)
    this.serving = new Int32Array(s.nodes)
    this.served = new Float64Array(s.nodes)
    this.loads = Array.from({ length: s.nodes }, () => new Map())
    this.next = new Int32Array(s.nodes)
    this.active = new Int32Array(s.nodes)
    this.own = new Uint8Array(cells)
    this.done = new Int32Array(s.nodes)
    this.startAt = new Float64Array(s.nodes).fill(Number.NaN)
    this.completion = new Array(s.nodes).fill(Number.NaN)
    this.order = Array.from({ length: s.nodes }, () => this.frameOrder())
  }

  run(): SimResult {
    for (let i = 0; i < this.s.nodes; i++) this.q.push(this.s.startTimes?.[i] ?? this.random() * this.s.startSpreadMs, { t: 'start', node: i })
    let last = 0
    for (let e = this.q.pop(); e; e = this.q.pop()) {
      this.events++
      last = e.time
      if (e.item.t === 'start') this.start(e.item.node, e.time)
      else if (e.item.t === 'retry') this.fetch(e.item.node, e.item.frame, e.time, e.item.relayed, e.item.tries)
      else this.verified(e.item.node, e.item.frame, e.item.from, e.time)
    }
    const unfinished = this.completion.filter((c) => Number.isNaN(c)).length
    if (unfinished > 0) throw new Error(`simulation ended with ${unfinished} node(s) unfinished`)
    return {
      originBytes: this.originBytes,
      storageBytes: this.storageBytes,
      storageRequests: this.storageRequests,
      peerBytes: this.peerBytes,
      maxReaderServed: Math.max(0, ...this.served),
      busy: this.busy,
      completionMs: this.completion,
      makespanMs: last,
      events: this.events,
    }
  }

  private start(node: number, now: number): void {
    this.startAt[node] = now
    this.fill(node, now)
  }

  /** Keep `window` of this node's own fetches in flight, in its frame order. */
  private fill(node: number, now: number): void {
    if (Number.isNaN(this.startAt[node])) return // not started: it only fetched for a peer so far
    const order = this.order[node]
    while (this.active[node] < this.s.window && this.next[node] < order.length) {
      const f = order[this.next[node]++]
      const k = node * this.s.frames + f
      if (this.heldAt[k] !== NEVER || this.fetchAt[k] !== NEVER) continue
      this.own[k] = 1
      this.active[node]++
      this.fetch(node, f, now, false)
    }
  }

  /**
   * Node starts fetching frame f: it walks its plan; a busy peer costs one round trip. With
   * `busyRetry`, a plan whose every peer was busy is made again after a back-off (up to that many
   * times) before the node goes upstream.
   */
  private fetch(node: number, f: number, now: number, relayed: boolean, tries = 0): void {
    this.fetchAt[node * this.s.frames + f] = now
    const steps = this.policy.plan({ me: node, frame: f, candidates: this.candidates(node, f, now), relayed, random: this.random })
    let at = now
    let busy = 0
    for (const step of steps) {
      if (step.kind === 'self') {
        const retry = this.s.busyRetry
        if (busy > 0 && retry && tries < retry.times) {
          this.q.push(at + retry.backoffMs, { t: 'retry', node, frame: f, relayed, tries: tries + 1 })
          return
        }
        this.upstream(node, f, at)
        return
      }
      if (this.serving[step.node] >= this.s.serveCap) {
        this.busy++
        busy++
        at += 2 * this.s.net.latencyMs
        continue
      }
      this.fromPeerStep(step.node, node, f, at, step.kind === 'owner')
      return
    }
    throw new Error(`plan for frame ${f} on node ${node} did not end with self`)
  }

  private fromPeerStep(peer: number, node: number, f: number, at: number, owner: boolean): void {
    const pk = peer * this.s.frames + f
    this.addLoad(node, peer, 1)
    if (this.heldAt[pk] <= at) {
      this.fromPeer(peer, node, f, at)
      return
    }
    if (this.fetchAt[pk] === NEVER) {
      if (!owner) throw new Error(`node ${node} was told to follow node ${peer}, which neither holds nor fetches frame ${f}`)
      this.fetch(peer, f, at + this.s.net.latencyMs, true) // the owner fetches it for us
    }
    this.serving[peer]++
    const w = this.waiters.get(pk)
    if (w) w.push(node)
    else this.waiters.set(pk, [node])
  }

  /** The node fetches the frame itself; from now on it tells the others it has the frame in flight. */
  private upstream(node: number, f: number, at: number): void {
    this.selfAt[node * this.s.frames + f] = at
    this.fetchers[f].push(node)
    if (this.s.mode === 'pending') this.fromOrigin(node, f, at)
    else this.fromStorage(node, f, at)
  }

  private addLoad(node: number, peer: number, d: number): void {
    const m = this.loads[node]
    const v = (m.get(peer) ?? 0) + d
    if (v === 0) m.delete(peer)
    else m.set(peer, v)
  }

  /** Peers that hold or fetch frame f as `me` knows them (one latency ago): a random sample of each. */
  private candidates(me: number, f: number, now: number): Candidate[] {
    const seen = now - this.s.net.latencyMs
    const out: Candidate[] = []
    const hs = this.holders[f]
    let visible = hs.length
    while (visible > 0 && this.heldAt[hs[visible - 1] * this.s.frames + f] > seen) visible--
    for (const n of this.sampleOf(hs, visible)) {
      if (n !== me) out.push({ node: n, holds: true, fetching: false, load: this.loads[me].get(n) ?? 0 })
    }
    const fetching = this.fetchers[f].filter((n) => n !== me && this.selfAt[n * this.s.frames + f] <= seen)
    for (const n of this.sampleOf(fetching, fetching.length)) out.push({ node: n, holds: false, fetching: true, load: this.loads[me].get(n) ?? 0 })
    return out
  }

  /** Up to `sample` distinct entries of xs[0..n), at random. */
  private sampleOf(xs: readonly number[], n: number): number[] {
    const k = this.s.sample
    if (n <= k) return xs.slice(0, n)
    const picked = new Set<number>()
    while (picked.size < k) picked.add(xs[Math.floor(this.random() * n)])
    return [...picked]
  }

  private fromPeer(peer: number, node: number, f: number, now: number): void {
    const { net, frameBytesC } = this.s
    const txStart = Math.max(now + net.latencyMs, this.upFree[peer])
    const txEnd = txStart + (frameBytesC * 1000) / net.nodeBps
    this.upFree[peer] = txEnd
    this.served[peer] += frameBytesC
    this.peerBytes += frameBytesC
    this.serving[peer]++
    this.receive(node, f, peer, txStart + net.latencyMs, txEnd + net.latencyMs)
  }

  private fromOrigin(node: number, f: number, now: number): void {
    const { net, frameBytesC } = this.s
    const txStart = Math.max(now + net.latencyMs, this.originFree)
    const txEnd = txStart + (frameBytesC * 1000) / net.originBps
    this.originFree = txEnd
    this.originBytes += frameBytesC
    this.receive(node, f, ORIGIN, txStart + net.latencyMs, txEnd + net.latencyMs)
  }

  private fromStorage(node: number, f: number, now: number): void {
    const { net, frameBytesC } = this.s
    const first = now + net.latencyMs + net.storageFirstByteMs
    this.storageBytes += frameBytesC
    this.storageRequests++
    this.receive(node, f, STORAGE, first, first + (frameBytesC * 1000) / net.storageRequestBps)
  }

  /** The frame arrives through the receiver's downlink, then is verified on one of its cores. */
  private receive(node: number, f: number, from: number, earliest: number, senderEnd: number): void {
    const { net, frameBytesC, frameBytesU } = this.s
    const rxStart = Math.max(earliest, this.downFree[node])
    const rxEnd = Math.max(senderEnd, rxStart + (frameBytesC * 1000) / net.nodeBps)
    this.downFree[node] = rxEnd
    let core = node * net.cores
    for (let c = core + 1; c < (node + 1) * net.cores; c++) if (this.cpuFree[c] < this.cpuFree[core]) core = c
    const cpuEnd = Math.max(rxEnd, this.cpuFree[core]) + (frameBytesU / MiB) * net.cpuMsPerMiB
    this.cpuFree[core] = cpuEnd
    this.q.push(cpuEnd, { t: 'verified', node, frame: f, from })
  }

  private verified(node: number, f: number, from: number, now: number): void {
    if (from >= 0) {
      this.serving[from]--
      this.addLoad(node, from, -1)
    }
    const k = node * this.s.frames + f
    this.heldAt[k] = now
    this.holders[f].push(node)
    const fs = this.fetchers[f]
    const at = fs.indexOf(node)
    if (at >= 0) fs.splice(at, 1)
    const w = this.waiters.get(k)
    if (w) {
      this.waiters.delete(k)
      for (const n of w) {
        this.serving[node]-- // owed: now sent
        this.fromPeer(node, n, f, now)
      }
    }
    if (++this.done[node] === this.s.frames) this.completion[node] = now - this.startAt[node]
    if (this.own[k] === 1) {
      this.own[k] = 0
      this.active[node]--
    }
    this.fill(node, now)
  }

  private frameOrder(): Int32Array {
    const o = Int32Array.from({ length: this.s.frames }, (_, i) => i)
    if (this.s.order === 'sequential') return o
    for (let i = o.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1))
      const t = o[i]
      o[i] = o[j]
      o[j] = t
    }
    return o
  }
}
