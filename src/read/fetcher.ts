/**
 * The source chain behind the chunk cache (docs/ARCHITECTURE.md, "The read path"): peers → shared
 * frame cache → object storage.
 * Each source is asked in turn; "not here", an error, a timeout and bytes that fail verification
 * are all ordinary outcomes that move on to the next source (fallbacks as code, not exception
 * handlers). Every frame is verified here, whichever source produced it;
 * a failure is counted and the source penalised; a corrupt shared-cache entry is deleted; verified
 * frames from elsewhere are offered to the shared cache in the background, never blocking the read.
 *
 * Hedging: a source other than the last that has not answered within `hedgeAfterMs` gets
 * the next source started beside it. The first VERIFIED answer wins; every other attempt is aborted
 * through its own AbortSignal and its late result ignored (neither counted, penalised nor cached).
 * An attempt that fails moves the chain on only if no later source is already running; while the
 * slow one runs, a failing hedge moves on to the source after it.
 *
 * A source that declares `retryAfterPenalty` (the peer source: it excludes the peer it was penalised
 * for) is asked once more after a verification failure before the chain moves on.
 */

import { PEER_DEFAULTS } from '../config/schema.ts'
import { InvalidArgumentError } from '../errors.ts'
import { type Logger, silentLogger } from '../obs/log.ts'
import { raceAbort, withDeadline } from '../util/abort.ts'
import { CoarseTimer } from '../util/coarse-timer.ts'
import { hedgedRace } from '../util/hedge.ts'
import { SOURCE_TIMEOUT_MS } from './constants.ts'
import { FrameUnavailableError } from './errors.ts'
import { ReadMetrics } from './metrics.ts'
import type { FrameRef, FrameSource } from './source.ts'
import { describeRef, verifyFrame } from './verify.ts'

/**
 * Why a frame is fetched: a reader waits for it (`demand`), or the prefetcher fetches it ahead of use
 * (`prefetch`). Demand fetches are never queued; prefetches take slots only demand leaves free
 * (src/prefetch/gate.ts), and the count of demand fetches in flight is what decides that.
 */
export type FetchPriority = 'demand' | 'prefetch'

/** What the chunk cache needs: verified, uncompressed bytes of a frame (or chunk). */
export interface VerifiedFrameFetcher {
  fetch(ref: FrameRef, signal: AbortSignal, priority?: FetchPriority): Promise<Uint8Array>
}

/** Demand fetches in flight, and a way to hear when one ends (the prefetch gate's input). */
export interface DemandLoad {
  readonly demandInFlight: number
  onDemandEnd(listener: () => void): () => void
}

export type PenaltyReason = 'corrupt' | 'error'

export interface FetcherOptions {
  /**
   * Asked in this order (e.g. peers, the shared cache or the node's frame store, object storage last).
   * A source that keeps verified frames (`offer`) gets those another source produced; one whose bytes
   * failed verification and that can drop them (`remove`) is told to.
   */
  readonly sources: readonly FrameSource[]
  /** Told about every bad answer so a peer session can drop a failing peer (Helia-style). */
  readonly onPenalty?: (source: FrameSource, ref: FrameRef, reason: PenaltyReason, err: unknown) => void
  /** Told about every frame fetched and verified, with its stored bytes (the swarm's availability). */
  readonly onVerified?: (ref: FrameRef, stored: Uint8Array) => void
  readonly sourceTimeoutMs?: number
  /** A source (not the last) silent this long gets the next one started beside it; default 250, Infinity = never. */
  readonly hedgeAfterMs?: number
  readonly metrics?: ReadMetrics
  readonly logger?: Logger
}

type Attempt = { plain: Uint8Array; stored: Uint8Array; ms: number } | { why: string; corrupt?: boolean; cancelled?: boolean }

export class FrameFetcher implements VerifiedFrameFetcher, DemandLoad {
  private readonly sources: readonly FrameSource[]
  private demand = 0
  private readonly demandEnded = new Set<() => void>()
  private readonly opts: FetcherOptions
  private readonly metrics: ReadMetrics
  private readonly log: Logger
  private readonly timeoutMs: number
  private readonly hedgeAfterMs: number
  private readonly hedgeTimer: CoarseTimer

  constructor(opts: FetcherOptions) {
    if (opts.sources.length === 0) throw new InvalidArgumentError('a frame fetcher needs at least one source, found none')
    this.opts = opts
    this.sources = [...opts.sources]
    this.metrics = opts.metrics ?? new ReadMetrics()
    this.log = (opts.logger ?? silentLogger).child({ component: 'fetcher' })
    this.timeoutMs = opts.sourceTimeoutMs ?? SOURCE_TIMEOUT_MS
    this.hedgeAfterMs = opts.hedgeAfterMs ?? PEER_DEFAULTS.hedgeAfterMs
    // A tenth of the delay: a hedge starts at most 10% late, and one tick serves every request in flight.
    this.hedgeTimer = new CoarseTimer(Number.isFinite(this.hedgeAfterMs) ? Math.min(50, Math.max(1, this.hedgeAfterMs / 10)) : 50)
  }

  get demandInFlight(): number {
    return this.demand
  }

  onDemandEnd(listener: () => void): () => void {
    this.demandEnded.add(listener)
    return () => this.demandEnded.delete(listener)
  }

  /** Verified uncompressed bytes of `ref` from the first source that has good ones (hedged, see above). */
  fetch(ref: FrameRef, signal: AbortSignal, priority: FetchPriority = 'demand'): Promise<Uint8Array> {
    if (priority === 'prefetch') return this.fetchChain({ ...ref, prefetch: true }, signal)
    this.demand++
    const done = this.fetchChain(ref, signal)
    const end = (): void => {
      this.demand--
      for (const l of [...this.demandEnded]) l()
    }
    done.then(end, end)
    return done
  }

  private async fetchChain(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array> {
    const chain = this.sources
    const why: string[] = []
    const winner = await hedgedRace<{ plain: Uint8Array; stored: Uint8Array; ms: number }>({
      count: chain.length,
      hedgeMs: this.hedgeAfterMs,
      hedgeMsOf: (i) => chain[i].hedgeAfterMs?.(ref),
      timer: this.hedgeTimer,
      signal,
      supersede: () => new Error('superseded: the frame was fetched or the fetch was abandoned'),
      attempt: async (run) => {
        const source = chain[run.index]
        if (run.hedge) this.metrics.hedgesStarted.inc({ source: source.name })
        if (run.retry) this.metrics.penaltyRetries.inc({ source: source.name })
        const result = await this.attempt(source, ref, run.signal)
        if ('plain' in result) return { won: result }
        if (result.cancelled) return { cancelled: true }
        why.push(`${source.name}: ${result.why}`)
        return { miss: true, retry: result.corrupt === true && source.retryAfterPenalty === true }
      },
    })
    if (!winner) throw new FrameUnavailableError(describeRef(ref), why)
    this.won(chain[winner.run.index], ref, winner.value, winner.run.hedge)
    return winner.value.plain
  }

  private won(source: FrameSource, ref: FrameRef, result: { plain: Uint8Array; stored: Uint8Array; ms: number }, hedge: boolean): void {
    if (hedge) this.metrics.hedgesWon.inc({ source: source.name })
    this.metrics.fetchSeconds.observe({ source: source.name }, result.ms / 1000)
    this.metrics.hits.inc({ source: source.name })
    this.metrics.bytesFetched.inc({ source: source.name }, result.stored.byteLength)
    // Write-back only to other sources: bytes just read from a cache are already there.
    for (const s of this.sources) if (s !== source && s !== source.viewOf) s.offer?.(ref, result.stored)
    this.opts.onVerified?.(ref, result.stored)
  }

  /** One source, verified. `signal` is this attempt's own: aborted = lost to another attempt or abandoned. */
  private async attempt(source: FrameSource, ref: FrameRef, signal: AbortSignal): Promise<Attempt> {
    const started = performance.now()
    let stored: Uint8Array | null
    try {
      // The deadline is raced as well as passed: a source that ignores its signal still cannot hang us.
      const deadline = withDeadline(signal, this.timeoutMs)
      stored = await raceAbort(source.fetch(ref, deadline), deadline)
    } catch (err) {
      if (signal.aborted) return { why: 'cancelled', cancelled: true }
      this.metrics.sourceErrors.inc({ source: source.name })
      this.opts.onPenalty?.(source, ref, 'error', err)
      this.log.warn({ err, source: source.name, ref: describeRef(ref) }, 'frame source failed')
      return { why: errorText(err) }
    }
    if (signal.aborted) return { why: 'cancelled', cancelled: true } // lost meanwhile: not even verified
    if (stored === null) return { why: 'not here' }
    try {
      const plain = await verifyFrame(ref, stored)
      return { plain, stored, ms: performance.now() - started }
    } catch (err) {
      await this.onCorrupt(source, ref, err)
      return { why: `corrupt: ${errorText(err)}`, corrupt: true }
    }
  }

  private async onCorrupt(source: FrameSource, ref: FrameRef, err: unknown): Promise<void> {
    this.metrics.verifyFailures.inc({ source: source.name })
    this.opts.onPenalty?.(source, ref, 'corrupt', err)
    this.log.warn({ err, source: source.name, ref: describeRef(ref) }, 'frame failed verification')
    // Awaited, so the write-back of the good copy fetched next cannot race with (and lose to) this delete.
    await source.remove?.(ref).catch((e: unknown) => this.log.warn({ err: e, source: source.name }, 'could not remove a corrupt cache entry'))
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
