/**
 * The source chain behind the chunk cache (DESIGN §7): peers → shared frame cache → object storage.
 * Each source is asked in turn; "not here", an error, a timeout and bytes that fail verification
 * are all ordinary outcomes that move on to the next source (STYLE practice 3: fallbacks as code,
 * not exception handlers). Every frame is verified here, whichever source produced it (DESIGN §8);
 * a failure is counted and the source penalised; a corrupt shared-cache entry is deleted; verified
 * frames from elsewhere are offered to the shared cache in the background, never blocking the read.
 */
import { type Logger, silentLogger } from '../obs/log.ts'
import { raceAbort, withDeadline } from './abort.ts'
import { SOURCE_TIMEOUT_MS } from './constants.ts'
import { FrameUnavailableError } from './errors.ts'
import { ReadMetrics } from './metrics.ts'
import type { SharedCacheSource } from './shared-cache.ts'
import type { FrameRef, FrameSource } from './source.ts'
import { type DigestCheck, describeRef, verifyFrame } from './verify.ts'

/** What the chunk cache needs: verified, uncompressed bytes of a frame (or chunk). */
export interface VerifiedFrameFetcher {
  fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array>
}

export type PenaltyReason = 'corrupt' | 'error'

export interface FetcherOptions {
  /** Object storage: the last resort. */
  readonly storage: FrameSource
  readonly shared?: SharedCacheSource
  /** The peer slot (the p2p layer); can also be set later with `setPeers`. */
  readonly peers?: FrameSource
  readonly verifyDigest?: DigestCheck
  /** Told about every bad answer so a peer session can drop a failing peer (Helia-style). */
  readonly onPenalty?: (source: FrameSource, ref: FrameRef, reason: PenaltyReason, err: unknown) => void
  readonly sourceTimeoutMs?: number
  readonly metrics?: ReadMetrics
  readonly logger?: Logger
}

type Attempt = { plain: Uint8Array; stored: Uint8Array } | { why: string }

export class FrameFetcher implements VerifiedFrameFetcher {
  private peers: FrameSource | undefined
  private readonly opts: FetcherOptions
  private readonly metrics: ReadMetrics
  private readonly log: Logger
  private readonly timeoutMs: number

  constructor(opts: FetcherOptions) {
    this.opts = opts
    this.peers = opts.peers
    this.metrics = opts.metrics ?? new ReadMetrics()
    this.log = (opts.logger ?? silentLogger).child({ component: 'fetcher' })
    this.timeoutMs = opts.sourceTimeoutMs ?? SOURCE_TIMEOUT_MS
  }

  setPeers(peers: FrameSource | undefined): void {
    this.peers = peers
  }

  /** Verified uncompressed bytes of `ref` from the first source that has good ones. */
  async fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array> {
    const attempts: string[] = []
    for (const source of this.chain()) {
      signal.throwIfAborted()
      const result = await this.attempt(source, ref, signal)
      if ('plain' in result) {
        // Write-back only from other sources: bytes just read from the shared cache are already there.
        if (this.opts.shared && source !== this.opts.shared) this.opts.shared.offer(ref, result.stored)
        return result.plain
      }
      attempts.push(`${source.name}: ${result.why}`)
    }
    throw new FrameUnavailableError(describeRef(ref), attempts)
  }

  private chain(): FrameSource[] {
    const chain: FrameSource[] = []
    if (this.peers) chain.push(this.peers)
    if (this.opts.shared) chain.push(this.opts.shared)
    chain.push(this.opts.storage)
    return chain
  }

  private async attempt(source: FrameSource, ref: FrameRef, signal: AbortSignal): Promise<Attempt> {
    const started = performance.now()
    let stored: Uint8Array | null
    try {
      // The deadline is raced as well as passed: a source that ignores its signal still cannot hang us.
      const deadline = withDeadline(signal, this.timeoutMs)
      stored = await raceAbort(source.fetch(ref, deadline), deadline)
    } catch (err) {
      if (signal.aborted) throw signal.reason
      this.metrics.sourceErrors.inc({ source: source.name })
      this.opts.onPenalty?.(source, ref, 'error', err)
      this.log.warn({ err, source: source.name, ref: describeRef(ref) }, 'frame source failed')
      return { why: errorText(err) }
    }
    if (stored === null) return { why: 'not here' }
    try {
      const plain = await verifyFrame(ref, stored, this.opts.verifyDigest)
      this.metrics.fetchSeconds.observe({ source: source.name }, (performance.now() - started) / 1000)
      this.metrics.hits.inc({ source: source.name })
      this.metrics.bytesFetched.inc({ source: source.name }, stored.byteLength)
      return { plain, stored }
    } catch (err) {
      await this.onCorrupt(source, ref, err)
      return { why: `corrupt: ${errorText(err)}` }
    }
  }

  private async onCorrupt(source: FrameSource, ref: FrameRef, err: unknown): Promise<void> {
    this.metrics.verifyFailures.inc({ source: source.name })
    this.opts.onPenalty?.(source, ref, 'corrupt', err)
    this.log.warn({ err, source: source.name, ref: describeRef(ref) }, 'frame failed verification')
    const shared = this.opts.shared
    // Awaited, so the write-back of the good copy fetched next cannot race with (and lose to) this delete.
    if (shared && source === shared) {
      await shared.remove(ref).catch((e: unknown) => this.log.warn({ err: e }, 'could not remove corrupt shared entry'))
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
