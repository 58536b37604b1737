/**
 * The serving side of the relay protocol for frames not in the node's frame store yet
 * (cached-frames.ts `FrameRelay`): a reader of the same build asks this node for a frame because it
 * is fetching it (its "in flight" bit) or owns it in the swarm (src/swarm/select.ts). A frame on its
 * way here is answered when it arrives; one nobody fetches yet is fetched now through this node's
 * own fetcher (marked as a relay, so it is never handed on to another owner) and answered when it
 * arrives, so a cold frame wanted by many readers leaves the origin or storage once. Waits are bounded
 * (SWARM_WAIT_MS); only frames of files this node reads are relayed, and only VERIFIED bytes (those
 * the fetcher handed to the swarm's availability) are ever served.
 */
import type { BuildId, CodecName, FileKind } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import { type Counter, counter, type Registry } from '../obs/metrics.ts'
import type { FrameRange } from '../p2p/index.ts'
import { SWARM_WAIT_MS } from '../read/sources/swarm-steps.ts'
import type { FrameRef } from '../read/source.ts'
import type { SwarmAvailability } from '../swarm/availability.ts'
import type { FrameRelay } from './cached-frames.ts'

/** The longest a fetch on a peer's behalf may run (the frame is kept here whoever waits for it). */
const RELAY_FETCH_MS = 30_000

export interface SwarmRelayDeps {
  readonly swarm: SwarmAvailability
  /** Fetch a frame through the node's own source chain on a peer's behalf (marks it relayed first). */
  readonly fetchFor: (ref: FrameRef, signal: AbortSignal) => Promise<unknown>
  readonly registry: Registry
  readonly log: Logger
}

export class SwarmRelay implements FrameRelay {
  private readonly deps: SwarmRelayDeps
  private readonly outcomes: Counter<'result'>

  constructor(deps: SwarmRelayDeps) {
    this.deps = deps
    this.outcomes = counter(deps.registry, 'snapswarm_swarm_relay_total', 'Relay requests for frames not in the frame store, by how they were answered', [
      'result',
    ]) as Counter<'result'>
  }

  async frame(buildId: BuildId, kind: FileKind, codec: CodecName, range: FrameRange, signal: AbortSignal, wait: boolean): Promise<Uint8Array | null> {
    const { swarm } = this.deps
    const at = swarm.locate({ buildId, kind, codec, startC: range.startC, sizeC: range.sizeC })
    if (!at) return this.counted('unknown', null)
    const recent = swarm.recentBytes(at)
    if (recent) return this.counted('recent', recent)
    if (!wait) return this.counted('missing', null)
    if (swarm.holds(at)) return this.counted('gone', null) // held once, no longer readable here
    const arrival = swarm.whenArrived(at, SWARM_WAIT_MS, signal)
    let result = 'arrived'
    if (!swarm.fetching(at)) {
      const ref = swarm.refAt(at)
      if (ref) {
        result = 'fetched'
        this.deps.fetchFor(ref, AbortSignal.timeout(RELAY_FETCH_MS)).catch((err: unknown) => this.deps.log.debug({ err, buildId }, 'relay fetch failed'))
      }
    }
    const bytes = await arrival
    return this.counted(bytes ? result : 'timeout', bytes)
  }

  private counted(result: string, bytes: Uint8Array | null): Uint8Array | null {
    this.outcomes.inc({ result })
    return bytes
  }
}
