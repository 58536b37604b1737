/**
 * Frame source selection for a swarm of readers: which peers to ask for one frame, in which order,
 * before this node fetches it itself (from the build's origin, the shared cache or storage). Pure:
 * no I/O, no clock, randomness only through `rng`, so the read path (src/read/sources/peer.ts) and a
 * simulation of thousands of nodes drive the very same code.
 *
 * The order, for one frame:
 * 1. `holder`: peers that hold the frame and are not penalised MAX_OWNER_PENALTY or more, under the
 *    per-peer cap of requests in flight from this node, least penalised first, then least loaded, ties broken at random (so readers spread over
 *    the copies instead of all asking the first one).
 * 2. `fetching`: peers fetching the frame right now (they answer when it arrives: a bounded wait),
 *    least penalised and least loaded first; at most MAX_FOLLOW of them.
 * 3. `owner`: for a frame nobody holds or fetches yet, the one member responsible for it (rendezvous
 *    hashing of the frame over the members reading the file, less any penalised MAX_OWNER_PENALTY or
 *    more): it fetches the frame once and the
 *    others follow it, so a cold frame wanted by many readers at once leaves the origin or storage
 *    about once. Not when this node is the owner, nor for a frame fetched on a peer's behalf
 *    (`relayed`: the owner chain stops after one hop, so two nodes never wait on each other).
 * 4. holders at their cap, least loaded first (a busy copy still beats the origin); then holders
 *    penalised MAX_OWNER_PENALTY or more (a copy that was bad lately), least penalised first;
 * 5. `self`: this node fetches it (origin, shared cache, storage: the rest of its source chain).
 */

/** What this node knows of one peer for one frame. */
export interface SourceCandidate {
  readonly peer: string
  /** The peer holds the frame (its "have" bit). */
  readonly holds: boolean
  /** The peer is fetching the frame now (its "in flight" bit). */
  readonly fetching: boolean
  /** Requests from this node to the peer in flight now. */
  readonly load: number
  /** The peer's current (decaying) penalty; 0 = none. Peers never to be asked are left out by the caller. */
  readonly penalty: number
}

export interface SelectionInput {
  /** The frame, the same on every node: e.g. `{build}/{kind}/{tableId}/{index}` (frameKey below). */
  readonly frameKey: string
  /** This node's id. */
  readonly self: string
  /** Nodes reading this file (rendezvous candidates); this node is added if missing. */
  readonly members: readonly string[]
  readonly candidates: readonly SourceCandidate[]
  /** Requests to one peer in flight at once before it counts as busy (default DEFAULT_PEER_CAP). */
  readonly maxInFlightPerPeer?: number
  /** Uniform in [0, 1): Math.random, or a seeded generator in a simulation. */
  readonly rng: () => number
  /** Fetched on behalf of a peer: never hand it on to the owner (one hop at most). */
  readonly relayed?: boolean
}

export type SourceStep =
  | { readonly kind: 'holder'; readonly peer: string }
  | { readonly kind: 'fetching'; readonly peer: string }
  | { readonly kind: 'owner'; readonly peer: string }
  | { readonly kind: 'self' }

/** Requests from one node to one peer in flight at once before that peer is busy for it. */
export const DEFAULT_PEER_CAP = 8
/** Peers fetching a frame asked at most, one after the other, before moving on. */
export const MAX_FOLLOW = 2
/**
 * A member with at least this penalty owns no frames for this node (a corrupt frame costs 10, an
 * error 1): its cold frames go to the owner among the others, until its penalty decays.
 */
export const MAX_OWNER_PENALTY = 5

/** The frame's name in the swarm: the same string on every node that indexes the same table. */
export function frameKey(buildId: string, kind: string, tableId: string, index: number): string {
  return `${buildId}/${kind}/${tableId}/${index}`
}

/** The ordered steps for one frame (see the file comment). Always ends with `self`. */
export function planFrameSources(input: SelectionInput): SourceStep[] {
  const cap = input.maxInFlightPerPeer ?? DEFAULT_PEER_CAP
  const others = input.candidates.filter((c) => c.peer !== input.self)
  const trusted = (c: SourceCandidate) => c.penalty < MAX_OWNER_PENALTY
  const holders = spread(others.filter((c) => c.holds), input.rng)
  const good = holders.filter(trusted)
  const steps: SourceStep[] = good.filter((c) => c.load < cap).map((c) => ({ kind: 'holder', peer: c.peer }))
  const following = spread(others.filter((c) => !c.holds && c.fetching && c.load < cap && trusted(c)), input.rng).slice(0, MAX_FOLLOW)
  for (const c of following) steps.push({ kind: 'fetching', peer: c.peer })
  if (good.length === 0 && following.length === 0 && !input.relayed) {
    const penalised = new Set(others.filter((c) => !trusted(c)).map((c) => c.peer))
    const members = input.members.filter((m) => !penalised.has(m))
    const owner = rendezvousOwner(input.frameKey, members.includes(input.self) ? members : [...members, input.self])
    const load = others.find((c) => c.peer === owner)?.load ?? 0
    if (owner !== undefined && owner !== input.self && load < cap) steps.push({ kind: 'owner', peer: owner })
  }
  for (const c of good.filter((h) => h.load >= cap).sort((a, b) => a.load - b.load)) steps.push({ kind: 'holder', peer: c.peer })
  // Penalised holders last (least penalised first): a copy that was bad once is asked only before the origin.
  for (const c of holders.filter((h) => !trusted(h))) steps.push({ kind: 'holder', peer: c.peer })
  steps.push({ kind: 'self' })
  return steps
}

/**
 * The member responsible for a frame: the highest hash of (frame, member). Every node that knows the
 * same members picks the same one, and a member joining or leaving moves only its own share of frames.
 */
export function rendezvousOwner(key: string, members: readonly string[]): string | undefined {
  let best: string | undefined
  let bestScore = -1
  for (const m of members) {
    const s = hash32(`${key}\0${m}`)
    if (s > bestScore || (s === bestScore && best !== undefined && m < best)) {
      best = m
      bestScore = s
    }
  }
  return best
}

/** Least penalised (in whole points) first, then least loaded; ties in random order. */
function spread(cs: readonly SourceCandidate[], rng: () => number): SourceCandidate[] {
  return cs
    .map((c) => ({ c, r: rng() }))
    .sort((a, b) => Math.floor(a.c.penalty) - Math.floor(b.c.penalty) || a.c.load - b.c.load || a.r - b.r)
    .map((x) => x.c)
}

/** FNV-1a over the UTF-16 code units, then the murmur3 finaliser: fast, well mixed, unsigned 32 bits. */
export function hash32(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
