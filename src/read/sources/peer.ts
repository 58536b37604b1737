/**
 * The peer slot of the read path (docs/ARCHITECTURE.md, "The read path"): frames of builds this node originated come from its
 * local framed copy; others from the peers that announce the build, one at a time, each with a
 * deadline and stall detection. NOT_AVAILABLE, BUSY, an error or a stall moves on to the next peer;
 * USE_STORAGE and UPLOAD_FAILED are told to `onUploadState` (the node records them on the status board,
 * the switchover's signals) and end
 * the peer attempt. A peer whose frame failed verification is never asked for that frame again;
 * errors and corrupt frames also cost the peer a penalty that orders peers and decays over time.
 */
import type { FileHandle } from 'node:fs/promises'
import { open } from 'node:fs/promises'
import { InvalidArgumentError } from '../../errors.ts'
import type { BuildId, CodecName, FileKind, OriginBuildState, UploadState } from '../../format/types.ts'
import type { PeerClient, PeerDirectory } from '../../p2p/index.ts'
import { sleep } from '../../util/abort.ts'
import type { FrameRef, FrameSource } from '../source.ts'
import type { EarlyFrames } from './early-frames.ts'
import { type FrameAnswer, FrameBatcher } from './frame-batcher.ts'
import { SWARM_WAIT_MS, SwarmSteps, type SwarmStepsOptions } from './swarm-steps.ts'

export interface PeerSourceOptions {
  readonly timeoutMs: number
  readonly stallMs: number
  /** A peer's penalties halve every this many ms (default PENALTY_HALF_LIFE_MS). */
  readonly penaltyHalfLifeMs?: number
  /** A peer said the build's upload finished (USE_STORAGE) or failed (UPLOAD_FAILED). */
  readonly onUploadState?: (buildId: BuildId, state: 'uploaded' | 'failed') => void
  /**
   * Frame-level availability (src/swarm/): frames of files the swarm indexes are asked of the peers
   * that hold or fetch them, or of their owner, before the origin (swarm-steps.ts).
   */
  readonly swarm?: Omit<SwarmStepsOptions, 'timeoutMs' | 'stallMs'>
  /** Frames that came with a header (a resume's first read): taken before any peer is asked. */
  readonly early?: EarlyFrames
}

/** What the node knows of builds across the cluster (the status board, read only here). */
export interface ClusterBuilds {
  get(id: BuildId): UploadState | undefined
  /** Peers known to hold the build without announcing it. */
  holdersOf(id: BuildId): readonly string[]
}

/** This node's own builds: the local framed copy of each file, in the geometry it framed. */
export interface OwnBuilds {
  get(id: BuildId): { readonly state: OriginBuildState; readonly files: ReadonlyMap<FileKind, { readonly dataPath: string; readonly info: { readonly frames: { readonly codec: CodecName } } }> } | undefined
}

/**
 * Penalties order peers, they never exclude one (`distrusted` does that, per frame): a peer that had
 * one transient error must not stay last forever, so penalties halve every 30 s. An error costs 1 and
 * is forgotten after two half-lives (1 minute); a corrupt frame costs 10, forgotten in under 3 minutes.
 */
export const PENALTY_HALF_LIFE_MS = 30_000
/** A decayed penalty below this counts as none, so a recovered peer ties with clean ones again. */
const PENALTY_FLOOR = 0.25
/** Peers with a penalty tracked at once: the cluster's size is the natural bound; this is a safety cap. */
export const MAX_PENALIZED_PEERS = 1024

/** For this long after a `cached` peer lacked a frame of a file, other cached peers are asked first for it. */
export const CACHED_MISS_MS = 5_000

/**
 * A round of announcers in which one answered BUSY (its serving slots full) and none served is asked
 * again after a back-off, at most this many times: BUSY means "ask again", and for a pending build the
 * origin is the only place the frame is, so giving up would fail the read.
 */
export const BUSY_ROUNDS = 8
/** First back-off after a BUSY round, doubled per round up to BUSY_BACKOFF_MAX_MS, with ±50% jitter. */
const BUSY_BACKOFF_MS = 25
const BUSY_BACKOFF_MAX_MS = 1_000

const refKey = (r: FrameRef) => `${r.buildId}/${r.kind}/${r.codec}/${r.startC}/${r.sizeC}`

export class PeerFrameSource implements FrameSource {
  readonly name = 'peer'
  /** After a corrupt answer the fetcher asks again once: the next attempt skips the peer that sent it. */
  readonly retryAfterPenalty = true
  private readonly batcher: FrameBatcher
  private readonly directory: PeerDirectory
  private readonly board: ClusterBuilds
  private readonly local: OwnBuilds
  private readonly onUploadState: PeerSourceOptions['onUploadState']
  /** Peers that served a bad copy of a frame (by frame key): never trusted for it again. */
  private readonly distrusted = new Map<string, Set<string>>()
  /** Batch errors already charged to their peer (weak: they go with the batch). */
  private readonly penalized = new WeakSet<object>()
  /** (peer, build, file) → when a `cached` peer last lacked a frame of that file (orders cached peers). */
  private readonly cachedMisses = new Map<string, number>()
  /** Who served the last answer for a frame, so a verification failure can be pinned on them. */
  private readonly servedBy = new Map<string, string>()
  /**
   * Who sent a frame with a header (EarlyFrames). A bad one costs its sender a penalty, but the frame
   * is asked of it once more the usual way before it is distrusted for it: for a pending build the
   * origin is the only place the frame is.
   */
  private readonly earlyFrom = new Map<string, string>()
  /** Penalties for errors and corrupt frames, decaying over time: they order peers (fewest first). */
  readonly penalties: PeerPenalties
  /** The swarm steps, when the node keeps frame-level availability. */
  readonly swarm: SwarmSteps | undefined
  private readonly early: EarlyFrames | undefined

  constructor(client: PeerClient, directory: PeerDirectory, board: ClusterBuilds, local: OwnBuilds, opts: PeerSourceOptions) {
    this.batcher = new FrameBatcher(client, opts)
    this.penalties = new PeerPenalties(opts.penaltyHalfLifeMs ?? PENALTY_HALF_LIFE_MS)
    this.directory = directory
    this.board = board
    this.local = local
    this.onUploadState = opts.onUploadState
    this.early = opts.early
    const ctx = {
      penalty: (p: string) => this.penalties.of(p),
      batcher: this.batcher,
      client,
      onError: (p: string, err: unknown) => this.chargeError(p, err),
      servers: (id: string) => directory.peersFor(id).flatMap((e) => (e.state === 'cached' ? [] : [e.peer])),
    }
    this.swarm = opts.swarm ? new SwarmSteps({ ...opts.swarm, timeoutMs: opts.timeoutMs, stallMs: opts.stallMs }, ctx) : undefined
  }

  async fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null> {
    const own = await this.fromLocal(ref)
    if (own) return own
    const key = refKey(ref)
    const early = this.early?.take(ref)
    if (early && !this.distrusted.get(key)?.has(early.peer)) {
      remember(this.earlyFrom, key, early.peer) // verified by the fetcher; a bad one costs its sender a penalty
      return early.bytes
    }
    this.earlyFrom.delete(key) // this answer, if bad, is pinned on whoever sends it now
    const bad = this.distrusted.get(key)
    const at = this.swarm?.swarm.locate(ref)
    if (at) {
      const got = await this.swarm!.fetch(ref, at, bad, signal)
      if ('bytes' in got) {
        if (got.peer) remember(this.servedBy, key, got.peer)
        return got.bytes
      }
    }
    return this.fromAnnouncers(ref, key, bad, at !== undefined, signal)
  }

  /**
   * A peer's wait for a frame a swarm peer fetches for this node must not be cut short by a hedge to
   * the next source (which would fetch it a second time): frames the swarm indexes get the swarm's wait.
   */
  hedgeAfterMs(ref: FrameRef): number | undefined {
    return this.swarm?.indexes(ref) ? SWARM_WAIT_MS : undefined
  }

  /**
   * The peers announcing the build: its origin (pending), then `cached` copies (one per fetch). For a
   * frame the swarm indexes, the cached copies were asked already (`swarmAsked`): the origin only.
   * A round in which the origin of a pending build answered BUSY and none served is asked again after a back-off
   * (BUSY_ROUNDS), so an origin at its serving limit slows a read down instead of failing it.
   */
  private async fromAnnouncers(ref: FrameRef, key: string, bad: Set<string> | undefined, swarmAsked: boolean, signal: AbortSignal): Promise<Uint8Array | null> {
    for (let round = 0; ; round++) {
      const got = await this.askAnnouncers(ref, key, bad, swarmAsked, signal)
      if (got !== 'busy') return got
      if (round + 1 >= BUSY_ROUNDS) return null
      const backoff = Math.min(BUSY_BACKOFF_MAX_MS, BUSY_BACKOFF_MS * 2 ** round)
      await sleep(backoff * (0.5 + Math.random()), signal)
    }
  }

  /** One round of fromAnnouncers: the bytes, null (nobody has them), or 'busy' (someone may, ask again). */
  private async askAnnouncers(ref: FrameRef, key: string, bad: Set<string> | undefined, swarmAsked: boolean, signal: AbortSignal): Promise<Uint8Array | null | 'busy'> {
    const entries = this.directory.peersFor(ref.buildId).filter((e) => !swarmAsked || e.state !== 'cached')
    const cachedOnly = new Set(entries.filter((e) => e.state === 'cached').map((e) => e.peer))
    const pendingAt = new Set(entries.filter((e) => e.state === 'pending').map((e) => e.peer))
    const now = performance.now()
    // When a cached copy last lacked a frame of this file (0: not recently): such copies are asked last.
    const missedAt = (peer: string) => {
      const at = cachedOnly.has(peer) ? (this.cachedMisses.get(`${peer}/${ref.buildId}/${ref.kind}`) ?? 0) : 0
      return now - at < CACHED_MISS_MS ? at : 0
    }
    const peers = [...new Set([...entries.map((e) => e.peer), ...this.board.holdersOf(ref.buildId)])]
      .filter((p) => !bad?.has(p))
      .sort((a, b) => this.penalties.of(a) - this.penalties.of(b) || missedAt(a) - missedAt(b))
    let cachedTried = false
    let busy = false
    for (const peer of peers) {
      signal.throwIfAborted()
      // A cached copy holds what its node happened to read (a resumed VM touches part of its memory):
      // one such peer per fetch, then the frame store and storage, never a round of round trips through
      // every partial copy in the cluster. The one asked is the one that lacked a frame of this file
      // least recently, so the copies take turns instead of the first one always answering "not here".
      if (cachedOnly.has(peer)) {
        if (cachedTried) continue
        cachedTried = true
      }
      let answer: FrameAnswer
      try {
        answer = await this.batcher.get(peer, ref.buildId, ref.kind, ref.codec, { startC: ref.startC, sizeC: ref.sizeC }, signal, ref.prefetch === true)
      } catch (err) {
        if (signal.aborted) throw signal.reason
        this.chargeError(peer, err)
        continue
      }
      if (answer.status === 'OK') {
        remember(this.servedBy, key, peer)
        return answer.bytes
      }
      if (answer.status === 'USE_STORAGE') {
        this.onUploadState?.(ref.buildId, 'uploaded')
        return null
      }
      if (answer.status === 'UPLOAD_FAILED') {
        this.onUploadState?.(ref.buildId, 'failed')
        return null
      }
      // Only an origin's BUSY is worth waiting for: a copy elsewhere (cached, a holder) has a fallback.
      if (answer.status === 'BUSY' && pendingAt.has(peer)) busy = true
      if (answer.status === 'NOT_AVAILABLE' && cachedOnly.has(peer)) remember(this.cachedMisses, `${peer}/${ref.buildId}/${ref.kind}`, now)
    }
    return busy ? 'busy' : null
  }

  /** One failed batch rejects each of its waiters with the same error: it costs the peer one point, not one per frame. */
  private chargeError(peer: string, err: unknown): void {
    if (err instanceof Object && this.penalized.has(err)) return
    if (err instanceof Object) this.penalized.add(err)
    this.penalties.add(peer, 1)
  }

  /**
   * Whether this source must be asked before the node's frame store for `buildId` (heldFramesFirst):
   * this node's own build (its local framed copy), or one that may be pending. For a pending build a
   * stored copy that turned out corrupt could not be replaced from storage, so its origin comes first.
   * (A build of unknown state counts as pending when a peer announces it so: its parent layers are
   * read without a file of their own watching their state.)
   */
  asksFirst(buildId: string): boolean {
    if (this.local.get(buildId)) return true
    const state = this.board.get(buildId)
    if (state !== undefined) return state === 'pending'
    return this.directory.peersFor(buildId).some((e) => e.state === 'pending')
  }

  /** Called by the fetcher when bytes this source returned failed verification. */
  penalize(ref: FrameRef): void {
    const key = refKey(ref)
    const early = this.earlyFrom.get(key)
    if (early) {
      this.earlyFrom.delete(key)
      this.penalties.add(early, 10)
      return
    }
    const peer = this.servedBy.get(key)
    if (!peer) return
    this.servedBy.delete(key)
    const set = this.distrusted.get(key) ?? new Set<string>()
    remember(this.distrusted, key, set)
    set.add(peer)
    this.penalties.add(peer, 10)
  }

  /** This node's own pending (or recently uploaded) build, in the geometry it framed locally. */
  private async fromLocal(ref: FrameRef): Promise<Uint8Array | null> {
    const b = this.local.get(ref.buildId)
    const file = b?.files.get(ref.kind)
    if (!file || (b!.state !== 'pending' && b!.state !== 'uploaded') || file.info.frames.codec !== ref.codec) return null
    let fh: FileHandle | undefined
    try {
      fh = await open(file.dataPath, 'r')
      const buf = Buffer.allocUnsafe(ref.sizeC)
      const { bytesRead } = await fh.read(buf, 0, ref.sizeC, ref.startC)
      return bytesRead === ref.sizeC ? buf : null
    } catch {
      return null // evicted between the check and the read: ask the cluster
    } finally {
      await fh?.close()
    }
  }
}

/**
 * Each peer's penalty, decaying exponentially: stored with the time it was last changed and decayed
 * lazily when read, so there is no timer. Bounded: past MAX_PENALIZED_PEERS, the peer penalised
 * longest ago is forgotten first.
 */
export class PeerPenalties {
  private readonly halfLifeMs: number
  /** Least recently penalised first. */
  private readonly byPeer = new Map<string, { value: number; at: number }>()

  private readonly now: () => number

  /** `now` (ms, monotonic) is performance.now(); a test may pass its own clock. */
  constructor(halfLifeMs: number, now: () => number = () => performance.now()) {
    if (!(halfLifeMs > 0)) throw new InvalidArgumentError(`penalty half-life must be positive, found ${halfLifeMs}`)
    this.halfLifeMs = halfLifeMs
    this.now = now
  }

  /** The current (decayed) penalty of `peer`; 0 once it has decayed below PENALTY_FLOOR. */
  of(peer: string): number {
    const p = this.byPeer.get(peer)
    if (!p) return 0
    const value = p.value * 2 ** (-(this.now() - p.at) / this.halfLifeMs)
    if (value >= PENALTY_FLOOR) return value
    this.byPeer.delete(peer)
    return 0
  }

  add(peer: string, points: number): void {
    const value = this.of(peer) + points
    this.byPeer.delete(peer)
    this.byPeer.set(peer, { value, at: this.now() })
    if (this.byPeer.size > MAX_PENALIZED_PEERS) this.byPeer.delete(this.byPeer.keys().next().value!)
  }

  /** Peers with a penalty still tracked. */
  get size(): number {
    return this.byPeer.size
  }
}

/** Per-frame bookkeeping stays bounded in a long-running node: the oldest entries go first. */
const MAX_TRACKED_FRAMES = 8192

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key)
  map.set(key, value)
  if (map.size > MAX_TRACKED_FRAMES) map.delete(map.keys().next().value!)
}
