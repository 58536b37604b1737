/**
 * The swarm part of the peer source (peer.ts): for a frame of a build file this node indexes
 * (src/swarm/availability.ts), ask the peers frame source selection names (src/swarm/select.ts), in
 * its order: holders on the ordinary frames protocol (batched), peers fetching the frame and the
 * frame's owner on the relay protocol (they answer when the frame arrives, or fetch it once for
 * every reader). When the plan reaches `self`, this node marks the frame as being fetched (peers
 * then follow it) and the caller goes on to the build's origin and the rest of the source chain.
 *
 * Nothing here is trusted: every answer goes back to the fetcher, which verifies it; a peer whose
 * copy failed is excluded for that frame by the caller (`exclude`) and penalised.
 */
import type { Counter, Registry } from '../../obs/metrics.ts'
import { counter, createRegistry } from '../../obs/metrics.ts'
import type { PeerClient } from '../../p2p/index.ts'
import type { Located, SwarmAvailability } from '../../swarm/availability.ts'
import { planFrameSources, type SourceStep } from '../../swarm/select.ts'
import type { FrameRef } from '../source.ts'
import type { FrameAnswer, FrameBatcher } from './frame-batcher.ts'

/** How long this node waits for a frame it (or a peer it relays to) is fetching already. */
export const SWARM_WAIT_MS = 8_000
/**
 * Readers that open a build at the same moment each know no other reader for a few milliseconds (their
 * have messages cross): for this long after a file is opened, a node that knows no other reader of it
 * yet, but is connected to peers other than the build's origin, waits for one to speak up before it
 * fetches a frame itself, so the owners of cold frames are agreed on instead of every reader fetching
 * the first frames it reads. A lone reader (only the origin connected) never waits.
 */
export const SETTLE_MS = 100
/** Frames fetched on a peer's behalf, remembered until their fetch starts (bounded). */
const MAX_RELAYING = 1024

export interface SwarmStepsOptions {
  readonly swarm: SwarmAvailability
  /** The peers this node is connected to now (whatever membership the node has). */
  readonly connected: () => readonly string[]
  readonly timeoutMs: number
  readonly stallMs: number
  /** Uniform in [0, 1) (default Math.random). */
  readonly rng?: () => number
  readonly registry?: Registry
}

/** What the peer source provides: its penalties and batched requests. */
export interface StepContext {
  readonly penalty: (peer: string) => number
  /** A request to `peer` failed (error, stall): the peer source charges it. */
  readonly onError: (peer: string, err: unknown) => void
  /** Peers serving the build as its origin (announcing it pending or uploaded): never readers of it. */
  readonly servers: (buildId: string) => readonly string[]
  readonly batcher: FrameBatcher
  readonly client: PeerClient
}

export type SwarmOutcome = { readonly bytes: Uint8Array; readonly peer: string | undefined } | { readonly selfFetch: true }

export class SwarmSteps {
  readonly swarm: SwarmAvailability
  private readonly opts: SwarmStepsOptions
  private readonly ctx: StepContext
  /** Requests from this node to each peer in flight now (the selection's load). */
  private readonly load = new Map<string, number>()
  /** Frames this node was asked to fetch for a peer (relay): never handed on to another owner. */
  private readonly relaying = new Set<string>()
  private readonly frames: Counter<'step'>
  private readonly bytes: Counter<'step'>
  private readonly selfFetches: Counter<'reason'>

  constructor(opts: SwarmStepsOptions, ctx: StepContext) {
    this.swarm = opts.swarm
    this.opts = opts
    this.ctx = ctx
    const reg = opts.registry ?? createRegistry()
    this.frames = counter(reg, 'snapswarm_swarm_frames_fetched_total', 'Frames of swarm-indexed files got from peers, by the step that got them', ['step']) as Counter<'step'>
    this.bytes = counter(reg, 'snapswarm_swarm_fetched_bytes_total', 'Compressed bytes got from peers for swarm-indexed files, by the role of the peer that sent them', [
      'step',
    ]) as Counter<'step'>
    this.selfFetches = counter(reg, 'snapswarm_swarm_self_fetches_total', 'Frames of swarm-indexed files this node fetched itself (origin, storage), by why', [
      'reason',
    ]) as Counter<'reason'>
  }

  /** The next fetch of `ref` is on a peer's behalf (cluster/cached-frames.ts relays it). */
  relayFor(ref: FrameRef): void {
    const at = this.swarm.locate(ref)
    if (!at) return
    this.relaying.add(at.key)
    if (this.relaying.size > MAX_RELAYING) this.relaying.delete(this.relaying.values().next().value!)
  }

  /** Whether `ref` is a frame of an indexed file (then a relay may take a while: no early hedge). */
  indexes(ref: FrameRef): boolean {
    return this.swarm.locate(ref) !== undefined
  }

  /**
   * Ask the swarm for `ref`: the bytes (unverified if a peer sent them: `peer`), or `selfFetch`: no
   * peer had it, this node fetches it now (marked as such) from the origin and the rest of the chain.
   */
  async fetch(ref: FrameRef, at: Located, exclude: ReadonlySet<string> | undefined, signal: AbortSignal): Promise<SwarmOutcome> {
    const { swarm } = this
    // Held here: the frame store has it, or is still writing it (then the bytes are in memory).
    const recent = swarm.recentBytes(at)
    if (recent) return { bytes: recent, peer: undefined }
    const relayed = this.relaying.delete(at.key)
    // Another fetch on this node has it on the way (a reader, a prefetch, a peer's relay): wait for that one.
    if (!relayed && swarm.fetching(at)) {
      const bytes = await swarm.whenArrived(at, SWARM_WAIT_MS, signal)
      if (bytes) return { bytes, peer: undefined }
    }
    let { steps, members } = this.plan(at, exclude, relayed)
    if (members === 1 && !relayed && (await this.settle(at, signal))) ({ steps, members } = this.plan(at, exclude, relayed))
    for (const step of steps) {
      signal.throwIfAborted()
      if (step.kind === 'self') break
      const answer = await this.ask(step, ref, signal)
      if (answer?.status === 'OK') {
        this.frames.inc({ step: step.kind })
        this.bytes.inc({ step: step.kind }, answer.bytes.byteLength)
        return { bytes: answer.bytes, peer: step.peer }
      }
    }
    // Why this node fetches the frame itself: it owns it, it fetches it for a peer, it knows no other
    // reader of the file (yet), or every peer asked failed.
    const why = relayed ? 'relayed' : members === 1 ? 'alone' : steps.length === 1 ? 'owner' : 'fallback'
    if (swarm.startFetching(at)) {
      this.selfFetches.inc({ reason: why })
      return { selfFetch: true }
    }
    // Started by another fetch on this node meanwhile: follow it rather than fetch the frame twice.
    const bytes = await swarm.whenArrived(at, SWARM_WAIT_MS, signal)
    this.selfFetches.inc({ reason: bytes ? 'joined' : 'timeout' })
    return bytes ? { bytes, peer: undefined } : { selfFetch: true }
  }

  /** Within SETTLE_MS of opening the file, wait for another reader to speak up (see SETTLE_MS); true if one did. */
  private async settle(at: Located, signal: AbortSignal): Promise<boolean> {
    const left = SETTLE_MS - this.swarm.age(at)
    if (!(left > 0)) return false
    const servers = new Set(this.ctx.servers(at.file.buildId))
    if (!this.opts.connected().some((p) => !servers.has(p))) return false
    return this.swarm.whenPeerIndexes(at, left, signal)
  }

  private plan(at: Located, exclude: ReadonlySet<string> | undefined, relayed: boolean): { steps: SourceStep[]; members: number } {
    const connected = this.opts.connected().filter((p) => !exclude?.has(p))
    const candidates = this.swarm.candidates(at, connected).map((c) => ({ ...c, load: this.load.get(c.peer) ?? 0, penalty: this.ctx.penalty(c.peer) }))
    const members = this.swarm.members(at, connected)
    const steps = planFrameSources({ frameKey: at.key, self: this.swarm.self, members, candidates, relayed, rng: this.opts.rng ?? Math.random })
    return { steps, members: members.length }
  }

  /** One step's request; undefined when it failed (the peer's problem: the caller moves on). */
  private async ask(step: Exclude<SourceStep, { kind: 'self' }>, ref: FrameRef, signal: AbortSignal): Promise<FrameAnswer | undefined> {
    const peer = step.peer
    this.load.set(peer, (this.load.get(peer) ?? 0) + 1)
    try {
      const range = { startC: ref.startC, sizeC: ref.sizeC }
      if (step.kind === 'holder') return await this.ctx.batcher.get(peer, ref.buildId, ref.kind, ref.codec, range, signal, ref.prefetch === true)
      // The peer stays silent while it waits for the frame: the stall limit covers that wait too.
      const r = await this.ctx.client.getFrames(peer, ref.buildId, ref.kind, ref.codec, [range], {
        relay: true,
        signal,
        timeoutMs: this.opts.timeoutMs,
        stallMs: this.opts.stallMs + SWARM_WAIT_MS,
      })
      return r.status === 'OK' ? { status: 'OK', bytes: r.frames[0] } : { status: r.status }
    } catch (err) {
      if (signal.aborted) throw signal.reason
      this.ctx.onError(peer, err)
      return undefined
    } finally {
      const n = (this.load.get(peer) ?? 1) - 1
      if (n > 0) this.load.set(peer, n)
      else this.load.delete(peer)
    }
  }
}
