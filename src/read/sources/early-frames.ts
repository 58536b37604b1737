/**
 * Frames that arrived with a header (a pending build's origin sends the frame of a resume's first read
 * together with its header: one round trip instead of two), held until the read asks the peer source
 * for that frame. They are unverified peer bytes like any other: the fetcher verifies them and a bad
 * one is pinned on the peer that sent it. Bounded: a few frames, a byte cap, and a short life (a
 * frame nobody asks for soon is dropped; the read then fetches it as usual).
 *
 * A held frame starts decoding at once (`verifyAhead`), on a pool thread while the reader opens the
 * build, and the fetcher's verification of these bytes takes that result: the resume's first read
 * does not wait for a decode it could have overlapped. Its decoded size counts against the byte cap.
 */
import { type Counter, counter, type Registry } from '../../obs/metrics.ts'
import type { FrameRef } from '../source.ts'
import { verifyAhead } from '../verify.ts'

export interface EarlyFramesOptions {
  /** Frames held at once (oldest dropped first). */
  readonly maxFrames?: number
  /** Bytes held at once (oldest dropped first). */
  readonly maxBytes?: number
  /** A frame not taken within this many ms is dropped. */
  readonly ttlMs?: number
  readonly now?: () => number
  /** `snapswarm_frames_with_header_total{outcome}`: frames that came with a header, taken by a read or dropped. */
  readonly registry?: Registry
}

interface Held {
  readonly bytes: Uint8Array
  /** What it holds: the stored bytes and, decoding ahead, the frame's decoded size. */
  readonly cost: number
  readonly peer: string
  readonly at: number
}

const DEFAULTS = { maxFrames: 8, maxBytes: 64 * 1024 * 1024, ttlMs: 30_000 }

const keyOf = (r: Pick<FrameRef, 'buildId' | 'kind' | 'codec' | 'startC' | 'sizeC'>): string => `${r.buildId}/${r.kind}/${r.codec}/${r.startC}/${r.sizeC}`

export class EarlyFrames {
  private readonly held = new Map<string, Held>()
  private readonly maxFrames: number
  private readonly maxBytes: number
  private readonly ttlMs: number
  private readonly now: () => number
  private bytes = 0
  /** Frames taken by a read, and frames dropped untaken (full, expired or superseded). */
  readonly stats = { taken: 0, dropped: 0 }
  private readonly outcomes: Counter | undefined

  constructor(opts: EarlyFramesOptions = {}) {
    this.maxFrames = opts.maxFrames ?? DEFAULTS.maxFrames
    this.maxBytes = opts.maxBytes ?? DEFAULTS.maxBytes
    this.ttlMs = opts.ttlMs ?? DEFAULTS.ttlMs
    this.now = opts.now ?? Date.now
    this.outcomes = opts.registry && counter(opts.registry, 'snapswarm_frames_with_header_total', 'Frames that came with a pending header (a resume\'s first read), by outcome: taken by the read, or dropped unused', ['outcome'])
  }

  /**
   * Hold `bytes`, which `peer` sent as the stored bytes of `ref`, and start verifying them. A frame
   * larger than the byte cap (stored plus decoded) is not held.
   */
  put(ref: FrameRef, bytes: Uint8Array, peer: string): void {
    const cost = bytes.byteLength + ref.sizeU
    if (bytes.byteLength !== ref.sizeC || cost > this.maxBytes) return
    const key = keyOf(ref)
    this.drop(key)
    this.expire()
    while (this.held.size >= this.maxFrames || this.bytes + cost > this.maxBytes) this.drop(this.held.keys().next().value as string)
    this.held.set(key, { bytes, cost, peer, at: this.now() })
    this.bytes += cost
    verifyAhead(ref, bytes)
  }

  /** The held bytes of `ref` and who sent them, removed (each frame is taken once), or undefined. */
  take(ref: FrameRef): { bytes: Uint8Array; peer: string } | undefined {
    if (this.held.size === 0) return undefined
    this.expire()
    const key = keyOf(ref)
    const h = this.held.get(key)
    if (!h) return undefined
    this.held.delete(key)
    this.bytes -= h.cost
    this.stats.taken++
    this.outcomes?.inc({ outcome: 'taken' })
    return { bytes: h.bytes, peer: h.peer }
  }

  get size(): number {
    return this.held.size
  }

  private expire(): void {
    const cutoff = this.now() - this.ttlMs
    for (const [key, h] of this.held) {
      if (h.at > cutoff) break // insertion order is age order
      this.drop(key)
    }
  }

  private drop(key: string): void {
    const h = this.held.get(key)
    if (!h) return
    this.held.delete(key)
    this.bytes -= h.cost
    this.stats.dropped++
    this.outcomes?.inc({ outcome: 'dropped' })
  }
}
