/**
 * Where a node gets the header of a build file it is asked to read (docs/ARCHITECTURE.md, "The read path"):
 * 1. a build this node originated and is still uploading: its own pending header;
 * 2. object storage: the final header (its presence means the build is complete);
 * 3. the peers that announce the build (then any connected peer), hedged (see `race`): a pending
 *    header, served with the incomplete flag. USE_STORAGE sends us back to storage; UPLOAD_FAILED is
 *    a clear error at once.
 * Final headers are only ever taken from storage, never from bytes a peer sent.
 *
 * "Not found" is answered at once (ERR_NOT_FOUND, no retry) when every known source says no: storage
 * has no header, no peer announces the build pending, and every peer asked answered NOT_AVAILABLE
 * (an origin still framing the build answers BUSY, which keeps the lookup waiting). A file kind the
 * build does not have is "not found" at once too: its origin says the build is uploaded and storage
 * holds the build's other header but not this one, or its own origin holds it pending without it.
 */

import { type BuildStatusBoard, peersCanServe } from '../cluster/build-status.ts'
import { PEER_DEFAULTS } from '../config/schema.ts'
import { SnapswarmError } from '../errors.ts'
import { decodeHeader, type Header } from '../format/header.ts'
import { headerObjectName } from '../format/layout.ts'
import { type BuildId, FILE_KINDS, type FileKind } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import type { LocalBuilds } from '../origin/local-builds.ts'
import type { SnapswarmPeer } from '../p2p/index.ts'
import { NotFoundError, type ObjectStore } from '../storage/store.ts'
import { loadStoredHeader } from '../storage/stored-header.ts'
import { sleep } from '../util/abort.ts'
import { CoarseTimer } from '../util/coarse-timer.ts'
import { hedgedRace } from '../util/hedge.ts'
import type { EarlyFrames } from '../read/sources/early-frames.ts'
import { BuildUnavailableError, UploadFailedError } from './resumed-file.ts'

export interface HeaderResolverDeps {
  readonly store: ObjectStore
  readonly builds: LocalBuilds
  readonly board: BuildStatusBoard
  readonly peer: SnapswarmPeer
  /** Bound on waiting for a final header that should be in storage (the switchover poll). */
  readonly pollMs: number
  /** Delay before the next peer is also asked for a pending header (default PEER_DEFAULTS.hedgeAfterMs, as the frame fetcher's). */
  readonly hedgeMs?: number
  /**
   * This node is configured to join a cluster (bootstrap peers): while it is connected to nobody,
   * "no peer has the build" is not an answer yet, so an unknown build is waited for, not refused.
   */
  readonly expectsPeers?: boolean
  /** Where a frame that came with a pending header is held for the read that asked for it. */
  readonly early?: EarlyFrames
  readonly log: Logger
}

/** How a lookup may go: `firstReadAt`, the file offset the caller reads first (its frame may come with the header). */
export interface InitialOptions {
  /** The caller knows the build exists (a pause names it as its parent). */
  readonly mustExist?: boolean
  readonly firstReadAt?: number
}

type Settled<T> = { value: T | null } | { value?: undefined; error: unknown }

/** A promise's outcome as a value (never rejects): both lookups of a parallel header lookup are awaited. */
function settle<T>(p: Promise<T | null>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  )
}

/** A peer's answer that ends the lookup: a valid pending header, or the upload finished or failed. */
type Decisive = { status: 'OK'; peer: string; header: Header } | { status: 'USE_STORAGE' | 'UPLOAD_FAILED' }
/** No header from this peer; `no`: it said it does not have the build (NOT_AVAILABLE), a definite answer. */
type Miss = { status: 'MISS'; why: string; no?: boolean }
type PeerVerdict = Decisive | Miss

/** Every source says the build (or this file kind of it) does not exist: answered at once, never retried. */
export class BuildNotFoundError extends SnapswarmError {
  /** No source knows the build at all (rather than: the build exists without this file kind). */
  readonly unknownBuild: boolean
  constructor(message: string, unknownBuild = false) {
    super('ERR_NOT_FOUND', message)
    this.unknownBuild = unknownBuild
  }
}

export class HeaderResolver {
  private readonly deps: HeaderResolverDeps

  /** One shared low-resolution timer for the hedges of every lookup, not a `setTimeout` per peer asked. */
  private readonly hedgeTimer: CoarseTimer

  constructor(deps: HeaderResolverDeps) {
    this.deps = deps
    this.hedgeTimer = new CoarseTimer(Math.min(50, Math.max(1, (deps.hedgeMs ?? PEER_DEFAULTS.hedgeAfterMs) / 10)))
  }

  /**
   * Open a header stream to a peer as soon as it announces a build pending that it did not announce
   * before: a pause was just taken there, and a resume elsewhere usually follows, whose first step is
   * that header. The stream (one per peer, closed unused after half the stall limit, holding no
   * serving slot at the origin) saves the resume's first read a protocol negotiation round trip.
   * Returns the unsubscribe function.
   */
  warmOnAnnouncements(): () => void {
    const { peer } = this.deps
    return peer.directory.subscribe((change) => {
      if (change.current === 'pending' && change.previous === undefined && !this.deps.builds.get(change.buildId)) peer.client.warmHeader(change.peer)
    })
  }

  /**
   * The header to start reading with. A build that is not visible yet (still being framed by its
   * origin, or its announcement still on the way — a resume right after a pause) is retried with
   * backoff for up to `waitMs`; a failed upload is reported at once.
   */
  async initial(id: BuildId, kind: FileKind, signal?: AbortSignal, waitMs = 0, opts: InitialOptions = {}): Promise<Header> {
    const deadline = Date.now() + waitMs
    let delay = 20
    for (;;) {
      try {
        return await this.initialOnce(id, kind, signal, opts.firstReadAt)
      } catch (err) {
        // `mustExist`: the caller knows the build exists (a pause names it as the parent), so "nobody
        // knows it" means its origin is restarting or its announcement is on the way: wait for it.
        const retry = err instanceof BuildUnavailableError || (opts.mustExist && err instanceof BuildNotFoundError && err.unknownBuild)
        if (!retry || Date.now() + delay > deadline) throw err
      }
      await sleep(delay, signal)
      delay = Math.min(delay * 2, 500)
    }
  }

  private async initialOnce(id: BuildId, kind: FileKind, signal?: AbortSignal, firstReadAt?: number): Promise<Header> {
    const local = this.deps.builds.get(id)
    if (local?.state === 'framing') throw new BuildUnavailableError(`build ${id} is still being framed on this node; retry shortly`)
    if (local?.state === 'pending') {
      const f = local.files.get(kind)
      if (!f) throw new BuildNotFoundError(`build ${id} has no ${kind} (this node is its origin and holds it pending without one)`)
      return f.header
    }
    const failed = local?.state === 'failed' || this.deps.board.get(id) === 'failed'
    if (!failed && this.announcedPending(id)) return this.storageBesidePeers(id, kind, signal, firstReadAt)
    const stored = await this.tryStorage(id, kind)
    if (stored) return stored
    if (failed) throw new UploadFailedError(id)
    return this.fromPeers(id, kind, signal, firstReadAt)
  }

  /** Some peer announces `id` as pending (not merely cached frames of it). */
  private announcedPending(id: BuildId): boolean {
    return this.deps.peer.directory.peersFor(id).some((e) => e.state === 'pending')
  }

  /**
   * A peer announces the build pending: storage and the peers are asked at the same time instead of
   * one after the other, so a resume from a pending peer does not first wait a whole storage round
   * trip for a "not found". A final header from storage always wins when it is there first or the
   * peers had none; a pending header the origin served first is used at once (were the upload
   * finishing meanwhile, the switchover moves the file to the final header as usual).
   */
  private async storageBesidePeers(id: BuildId, kind: FileKind, signal?: AbortSignal, firstReadAt?: number): Promise<Header> {
    const losers = new AbortController()
    const peerSignal = signal ? AbortSignal.any([signal, losers.signal]) : losers.signal
    const stored = settle(this.tryStorage(id, kind))
    const peers = settle(this.fromPeers(id, kind, peerSignal, firstReadAt))
    const first = await Promise.race([stored.then((r) => ({ from: 'storage', r })), peers.then((r) => ({ from: 'peers', r }))])
    if (first.from === 'peers' && first.r.value) return first.r.value // storage's late answer is ignored
    const s = await stored
    if (s.value) {
      losers.abort(new BuildUnavailableError('storage holds the final header'))
      return s.value
    }
    const p = await peers
    if (p.value) return p.value
    if ('error' in s) throw s.error // storage failed and no peer served the header: as when asked in turn
    throw 'error' in p ? p.error : new BuildUnavailableError(`build ${id} is not in storage and no peer serves it`)
  }

  /** The final header from storage, polling with backoff for up to `boundMs`. */
  async final(id: BuildId, kind: FileKind, signal?: AbortSignal, boundMs = this.deps.pollMs): Promise<Header> {
    const deadline = Date.now() + boundMs
    let delay = 50
    for (;;) {
      const h = await this.tryStorage(id, kind)
      if (h) return h
      if (this.deps.board.get(id) === 'failed' || this.deps.builds.get(id)?.state === 'failed') throw new UploadFailedError(id)
      if (Date.now() + delay > deadline) throw new BuildUnavailableError(`the final header of ${id}/${kind} did not appear in storage within ${boundMs} ms`)
      await sleep(delay, signal)
      delay = Math.min(delay * 2, 1000)
    }
  }

  private async tryStorage(id: BuildId, kind: FileKind): Promise<Header | null> {
    try {
      return await loadStoredHeader(this.deps.store, id, kind)
    } catch (err) {
      if (err instanceof NotFoundError) return null
      throw err
    }
  }

  private async fromPeers(id: BuildId, kind: FileKind, signal?: AbortSignal, firstReadAt?: number): Promise<Header> {
    const { peer, board } = this.deps
    // A `cached` announcer holds frames, never a pending header: it is only asked as a connected peer, last.
    const announced = peer.directory
      .peersFor(id)
      .filter((e) => e.state !== 'cached')
      .map((e) => e.peer)
    const candidates = [...new Set([...announced, ...peer.node.connectedPeers()])]
    const tried: string[] = []
    const misses: Miss[] = []
    const ask = (p: string, s: AbortSignal): Promise<PeerVerdict> => {
      // A peer that announces the build pending is where the first frames come from next: its frames
      // stream opens while the header is on its way, not after.
      if (announced.includes(p)) peer.client.warmFrames(p)
      return this.askPeer(p, id, kind, s, firstReadAt)
    }
    const won = await this.race(candidates, ask, tried, signal, misses)
    signal?.throwIfAborted()
    if (won?.status === 'OK') {
      board.set(id, 'pending')
      // Its announcement may not have reached us yet: remember who serves it for the frame requests.
      board.addHolder(id, won.peer)
      return won.header
    }
    if (won?.status === 'USE_STORAGE') {
      board.set(id, 'uploaded')
      const otherKinds = await this.storedKinds(id)
      if (otherKinds.length > 0 && !otherKinds.includes(kind)) {
        const stored = await this.tryStorage(id, kind)
        if (stored) return stored
        throw new BuildNotFoundError(`build ${id} has no ${kind} (it has: ${otherKinds.join(', ')}; uploaded)`)
      }
      return this.final(id, kind, signal)
    }
    if (won?.status === 'UPLOAD_FAILED') {
      board.set(id, 'failed')
      throw new UploadFailedError(id)
    }
    const why = `${tried.join('; ') || 'no peers'}`
    const everyoneSaidNo = candidates.length > 0 ? misses.length === candidates.length && misses.every((m) => m.no) : !this.deps.expectsPeers
    // A build this node has seen announced pending is not "not found" when its origin is gone or
    // restarting (its announcement expired, the others say no): keep waiting for it or its upload.
    const seenPending = board.get(id) === 'pending'
    if (announced.length === 0 && everyoneSaidNo && !seenPending) {
      const has = [...new Set([...(this.deps.builds.get(id)?.files.keys() ?? []), ...(await this.storedKinds(id))])]
      if (has.length > 0) throw new BuildNotFoundError(`build ${id} has no ${kind} (it has: ${has.join(', ')})`)
      throw new BuildNotFoundError(`build ${id} is not in storage and no peer has it (${why})`, true)
    }
    throw new BuildUnavailableError(`build ${id} is not in storage and no peer serves it (${why})`)
  }

  /** The file kinds whose final header storage holds for `id`. */
  private async storedKinds(id: BuildId): Promise<FileKind[]> {
    const kinds: FileKind[] = []
    for (const k of FILE_KINDS) if (await this.deps.store.exists(headerObjectName(id, k))) kinds.push(k)
    return kinds
  }

  /**
   * Hedged (util/hedge.ts): the first candidate is asked at once, the next one `hedgeMs` later or as
   * soon as the newest one fails, whichever comes first, so a silent peer costs `hedgeMs` instead of a
   * stall timeout and a cluster is not asked all at once. The first decisive answer wins (a header,
   * USE_STORAGE or UPLOAD_FAILED, whoever answers first) and the others are aborted; null when no
   * candidate gave one (each one's reason is in `tried`).
   */
  private async race(
    candidates: readonly string[],
    ask: (peer: string, signal: AbortSignal) => Promise<PeerVerdict>,
    tried: string[],
    signal?: AbortSignal,
    misses: Miss[] = [],
  ): Promise<Decisive | null> {
    const won = await hedgedRace<Decisive>({
      count: candidates.length,
      hedgeMs: this.deps.hedgeMs ?? PEER_DEFAULTS.hedgeAfterMs,
      timer: this.hedgeTimer,
      signal,
      supersede: () => new BuildUnavailableError('another peer answered first'),
      attempt: async (run) => {
        const p = candidates[run.index]
        const v = await ask(p, run.signal).catch((err: unknown): PeerVerdict => ({ status: 'MISS', why: (err as Error).message }))
        if (v.status !== 'MISS') return { won: v }
        tried.push(`${p.slice(-8)}: ${v.why}`)
        misses.push(v)
        return { miss: true }
      },
    })
    return won?.value ?? null
  }

  /** One peer's answer, validated: a peer's header is only ever a pending one for the build asked. */
  private async askPeer(p: string, id: BuildId, kind: FileKind, signal: AbortSignal, firstReadAt?: number): Promise<PeerVerdict> {
    let answer: Awaited<ReturnType<SnapswarmPeer['client']['getHeader']>>
    try {
      // The first read's frame only where it can be kept for the read.
      answer = await this.deps.peer.client.getHeader(p, id, kind, { signal, firstReadAt: this.deps.early ? firstReadAt : undefined })
    } catch (err) {
      return { status: 'MISS', why: (err as Error).message }
    }
    if (answer.status === 'USE_STORAGE' || answer.status === 'UPLOAD_FAILED') return { status: answer.status }
    if (answer.status !== 'OK') return { status: 'MISS', why: answer.status, no: answer.status === 'NOT_AVAILABLE' }
    let h: Header
    try {
      h = decodeHeader(answer.header)
    } catch (err) {
      return { status: 'MISS', why: `served an undecodable header (${(err as Error).message})` }
    }
    if (h.buildId !== id || !h.incomplete) return { status: 'MISS', why: 'served a header for another build or without the pending flag' }
    if (answer.frame) this.keepFrame(p, h, kind, answer.frame)
    return { status: 'OK', peer: p, header: h }
  }

  /**
   * A frame sent with the header is held for the read only when the header's own frame table names it
   * (same range): it is then fetched like any frame of the build, and verified by the fetcher.
   */
  private keepFrame(p: string, h: Header, kind: FileKind, frame: { startC: number; sizeC: number; bytes: Uint8Array }): void {
    const table = h.builds.get(h.buildId)?.frames
    const i = table ? table.indexOfCompressed(frame.startC) : -1
    const f = i >= 0 ? table!.frames[i] : undefined
    if (!f || f.startC !== frame.startC || f.sizeC !== frame.sizeC) {
      this.deps.log.debug({ peer: p, buildId: h.buildId, startC: frame.startC }, 'a frame sent with a header is not in its frame table; dropped')
      return
    }
    const ref = { buildId: h.buildId, kind, codec: table!.codec, startU: f.startU, sizeU: f.sizeU, startC: f.startC, sizeC: f.sizeC }
    this.deps.early?.put(ref, frame.bytes, p)
  }

  /** `GET /v1/builds/{id}`: what this node knows of a build. */
  async describe(id: BuildId): Promise<Record<string, unknown> | null> {
    const local = this.deps.builds.get(id)
    const stored: FileKind[] = []
    for (const k of FILE_KINDS) if (await this.deps.store.exists(headerObjectName(id, k))) stored.push(k)
    const peers = this.deps.peer.directory.peersFor(id).map((e) => ({ peer: e.peer, state: e.state }))
    const remote = this.deps.board.get(id)
    if (!local && stored.length === 0 && peers.length === 0 && !remote) return null
    // Peers that only announce cached frames say nothing about the upload.
    const announcedState = peers.some((p) => p.state !== 'cached') ? 'pending' : 'unknown'
    const state = local?.state ?? (stored.length > 0 ? 'uploaded' : (remote ?? announcedState))
    const sources: string[] = []
    if (local && local.state !== 'failed') sources.push('local')
    if (peersCanServe(peers, stored.length > 0)) sources.push('peers')
    if (stored.length > 0) sources.push('storage')
    return {
      id,
      state,
      origin: local ? 'this-node' : undefined,
      error: local?.error,
      files: Object.fromEntries([...(local?.files ?? new Map())].map(([k, f]) => [k, { size: f.header.size, codec: f.info.frames.codec, frames: f.info.frames.frames.length }])),
      storedHeaders: stored,
      peers,
      readableFrom: sources,
    }
  }
}
