/**
 * Builds this node did not originate but has read: their verified compressed frames sit in the
 * node's frame store (src/read/sources/frame-store.ts, or the tracked shared cache); peers get them from here, which takes load off the
 * bucket and off the origin (docs/ARCHITECTURE.md, "The build-state machine": `cached`).
 *
 * Serving: OK only when every requested frame is in the store with the exact codec and compressed
 * range asked for, and each is read whole and verified again just before it is sent; anything else is
 * NOT_AVAILABLE, so the requester moves on to its next source. Never a header (a cached copy has no
 * pending header; header lookup must not depend on it), never a blob, never a build whose upload
 * failed. A read problem after OK (the first frame is checked before answering) fails the stream:
 * never a wrong byte.
 *
 * Announcing: up to `max` builds with frames in the store, most recently used first, as `cached`;
 * the list follows the store (a build evicted is withdrawn) and is re-ranked on every `refresh`.
 */
import type { BuildId, CodecName, FileKind } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import { type Counter, counter, type Registry } from '../obs/metrics.ts'
import type { AnnounceService, FrameRange, FramesAnswer, FramesServeOptions } from '../p2p/index.ts'
import type { HeldFrames } from '../read/sources/held-frames.ts'
import type { FrameRef } from '../read/source.ts'
import type { BuildStatusBoard } from './build-status.ts'
import type { LocalBuilds } from '../origin/local-builds.ts'

const NOT_AVAILABLE = { status: 'NOT_AVAILABLE' } as const

export interface CachedFramesDeps {
  readonly store: HeldFrames
  /** The builds this node originated: served and announced by their own rules (provider.ts). */
  readonly builds: LocalBuilds
  readonly board: BuildStatusBoard
  readonly registry: Registry
  readonly log: Logger
  /** Frames asked for on the relay protocol that are not in the store (yet): see FrameRelay. */
  readonly relay?: FrameRelay
}

/**
 * Serves frames that are not in the store yet (src/node wires it over the swarm's availability and the
 * node's fetcher): one that just arrived (still being written) from memory; on a relay request
 * (`wait`), a frame this node is fetching when it arrives, and a frame of a file this node reads that
 * nobody fetches yet is fetched now, once, for every reader that asks (this node owns it in the swarm).
 */
export interface FrameRelay {
  /** Verified stored bytes of the frame once here; null = not this node's to serve (the peer moves on). */
  frame(buildId: BuildId, kind: FileKind, codec: CodecName, range: FrameRange, signal: AbortSignal, wait: boolean): Promise<Uint8Array | null>
}

/** Frames one relay request may ask for: they are gathered in memory before the answer. */
export const MAX_RELAY_FRAMES = 4

export class CachedFrameServer {
  private readonly deps: CachedFramesDeps
  private readonly served: Counter
  private readonly servedBytes: Counter
  private readonly requests: Counter<'result'>

  constructor(deps: CachedFramesDeps) {
    this.deps = deps
    const reg = deps.registry
    this.served = counter(reg, 'snapswarm_frame_store_served_frames_total', 'Frames sent to peers from the node frame store (cached builds)')
    this.servedBytes = counter(reg, 'snapswarm_frame_store_served_bytes_total', 'Compressed bytes sent to peers from the node frame store')
    this.requests = counter(reg, 'snapswarm_frame_store_requests_total', 'Peer frame requests for builds this node did not originate, by answer', [
      'result',
    ]) as Counter<'result'>
  }

  /** Never serve (nor announce) a copy of a build whose upload this node knows failed. */
  failed(id: BuildId): boolean {
    return this.deps.store.index.isForbidden(id) || this.deps.builds.get(id)?.state === 'failed' || this.deps.board.get(id) === 'failed'
  }

  async getFrames(
    buildId: BuildId,
    kind: FileKind,
    codec: CodecName | undefined,
    ranges: readonly FrameRange[],
    signal?: AbortSignal,
    opts?: FramesServeOptions,
  ): Promise<FramesAnswer> {
    const { store } = this.deps
    // A cached entry is only served to a request that names its codec (older clients did not): a
    // range alone could be a frame of another geometry.
    // Nor raw chunks: they carry no checksum, so a copy on this disk cannot be re-verified before it leaves.
    if (codec === undefined || codec === 'none' || ranges.length === 0 || this.failed(buildId)) return this.answer('refused', NOT_AVAILABLE)
    const refs: FrameRef[] = []
    for (const r of ranges) {
      const ref = store.index.lookup(buildId, kind, codec, r.startC, r.sizeC)
      // Not (yet) on disk: a relay request may wait for it; any request gets a frame that just arrived
      // (announced held, still being written).
      if (!ref) return this.deps.relay ? this.relayed(buildId, kind, codec, ranges, signal, opts?.relay === true) : this.answer('missing', NOT_AVAILABLE)
      refs.push(ref)
    }
    const unpin = store.index.pin(buildId) // taken before any await: no eviction between lookup and read
    let first: Uint8Array | null = null
    try {
      if (await store.present(refs)) first = await store.readVerified(refs[0])
    } finally {
      if (!first) unpin()
    }
    if (!first) return this.answer('missing', NOT_AVAILABLE)
    const head = first
    return this.answer('ok', {
      status: 'OK',
      batch: {
        frame: async (i) => {
          const bytes = i === 0 ? head : await store.readVerified(refs[i])
          // After OK the only safe answer to a bad entry is a failed stream (the peer tries elsewhere).
          if (!bytes) throw new Error(`cached frame ${i} of ${buildId}/${kind} is no longer servable`)
          this.served.inc()
          this.servedBytes.inc(bytes.byteLength)
          return bytes
        },
        release: unpin,
      },
    })
  }

  /**
   * A relay request for frames not all in the store: each from the store or from the relay (on its
   * way here, or fetched now for the peer), all gathered before answering OK, so a frame that does
   * not come is a NOT_AVAILABLE, never a broken stream. Every byte was verified by this node's fetcher
   * or is re-verified from the store: nothing unverified is served on.
   */
  private async relayed(buildId: BuildId, kind: FileKind, codec: CodecName, ranges: readonly FrameRange[], signal: AbortSignal | undefined, wait: boolean): Promise<FramesAnswer> {
    const { relay, store } = this.deps
    if (!relay || ranges.length > MAX_RELAY_FRAMES) return this.answer('missing', NOT_AVAILABLE)
    const sig = signal ?? AbortSignal.timeout(30_000)
    const frames: Uint8Array[] = []
    for (const r of ranges) {
      const ref = store.index.lookup(buildId, kind, codec, r.startC, r.sizeC)
      const bytes = (ref && (await store.readVerified(ref))) || (await relay.frame(buildId, kind, codec, r, sig, wait))
      if (!bytes || bytes.byteLength !== r.sizeC) return this.answer('missing', NOT_AVAILABLE)
      frames.push(bytes)
    }
    return this.answer('relayed', {
      status: 'OK',
      batch: {
        frame: async (i) => {
          this.served.inc()
          this.servedBytes.inc(frames[i].byteLength)
          return frames[i]
        },
      },
    })
  }

  private answer<T extends FramesAnswer>(result: 'ok' | 'missing' | 'refused' | 'relayed', a: T): T {
    this.requests.inc({ result })
    return a
  }
}

export interface CachedAnnouncerDeps extends CachedFramesDeps {
  readonly server: CachedFrameServer
  readonly announcer: Pick<AnnounceService, 'announce' | 'withdraw'>
  /** Builds announced as cached at most (most recently used first); 0 = none. */
  readonly max: number
}

export class CachedAnnouncer {
  private readonly deps: CachedAnnouncerDeps
  private readonly announced = new Set<BuildId>()
  private readonly unsubscribe: () => void

  constructor(deps: CachedAnnouncerDeps) {
    this.deps = deps
    this.unsubscribe = deps.store.index.subscribe(() => this.refresh())
    this.refresh()
  }

  /** Bring the `cached` announcements in line with the store (and its recency order). */
  refresh(): void {
    const { store, builds, server, announcer, max, log } = this.deps
    const want = new Set<BuildId>()
    for (const id of store.index.builds()) {
      if (want.size >= max) break
      if (!builds.get(id) && !server.failed(id)) want.add(id)
    }
    for (const id of this.announced) {
      if (want.has(id)) continue
      this.announced.delete(id)
      // An own build's entry is the origin's announcement now: never withdraw that one.
      if (!builds.get(id)) announcer.withdraw(id)
      log.debug({ buildId: id }, 'withdrew cached announcement')
    }
    for (const id of want) {
      if (this.announced.has(id)) continue
      this.announced.add(id)
      announcer.announce({ buildId: id, state: 'cached', memfileSize: 0, rootfsSize: 0 })
      log.debug({ buildId: id }, 'announcing build as cached')
    }
  }

  stop(): void {
    this.unsubscribe()
  }
}
