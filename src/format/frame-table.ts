/**
 * Frame tables: per build file, the codec and the ordered frames with absolute
 * uncompressed (startU) and compressed (startC) offsets. Tables stored in V4 headers are trimmed to
 * the frames some mapping touches, so gaps between frames are legal; overlaps are not.
 *
 * Immutable: frames are frozen, and trim() returns a new table (headers mutated while
 * readers used them). Lookups are binary searches (a linear scan per mapping split made large headers quadratic).
 */
import { FormatError, InvalidArgumentError, LimitError } from '../errors.ts'
import { MAX_FRAME_SIZE } from './codec-common.ts'
import type { CodecName, Frame } from './types.ts'

/** At most 2^20 frames per table (2 TiB of 2 MiB frames), e2b's cap too. */
export const MAX_FRAMES_PER_TABLE = 1_048_576

export interface ByteRange {
  readonly start: number
  readonly end: number
}

export class FrameTable {
  readonly codec: CodecName
  readonly frames: readonly Frame[]
  /** Σ sizeU of the frames in this table (the data file's size when the table is complete). */
  readonly uncompressedSize: number
  /** Σ sizeC of the frames in this table (the stored object's size when the table is complete). */
  readonly compressedSize: number

  /** Takes frames as given; call validate() on anything from outside. */
  constructor(codec: CodecName, frames: readonly Frame[]) {
    this.codec = codec
    this.frames = Object.freeze(frames.map((f) => Object.freeze({ startU: f.startU, startC: f.startC, sizeU: f.sizeU, sizeC: f.sizeC })))
    let u = 0
    let c = 0
    for (const f of this.frames) {
      u += f.sizeU
      c += f.sizeC
    }
    this.uncompressedSize = u
    this.compressedSize = c
  }

  /** A complete table from the emitted frame sizes, in file order, offsets starting at 0. */
  static fromSizes(codec: CodecName, sizes: readonly { sizeU: number; sizeC: number }[]): FrameTable {
    const frames: Frame[] = []
    let startU = 0
    let startC = 0
    for (const { sizeU, sizeC } of sizes) {
      frames.push({ startU, startC, sizeU, sizeC })
      startU += sizeU
      startC += sizeC
    }
    const table = new FrameTable(codec, frames)
    table.validate(InvalidArgumentError)
    return table
  }

  /** Index of the frame holding uncompressed byte `offsetU`, or -1. O(log n). */
  indexOf(offsetU: number): number {
    return this.search(offsetU, (f) => f.startU, (f) => f.sizeU)
  }

  /** Index of the frame holding stored byte `offsetC`, or -1. O(log n). */
  indexOfCompressed(offsetC: number): number {
    return this.search(offsetC, (f) => f.startC, (f) => f.sizeC)
  }

  private search(offset: number, start: (f: Frame) => number, size: (f: Frame) => number): number {
    const frames = this.frames
    let lo = 0
    let hi = frames.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const f = frames[mid]
      if (offset < start(f)) hi = mid - 1
      else if (offset >= start(f) + size(f)) lo = mid + 1
      else return mid
    }
    return -1
  }

  /** The frame holding `offsetU`; InvalidArgumentError if no frame of this table does. */
  frameAt(offsetU: number): Frame {
    const i = this.indexOf(offsetU)
    if (i < 0) throw new InvalidArgumentError(`expected an offset inside a ${this.codec} frame, found ${offsetU} (not covered)`)
    return this.frames[i]
  }

  /**
   * The frame that starts exactly at `offsetU`. A mid-frame offset is an error, never rounded down
   * to the containing frame.
   */
  frameStartingAt(offsetU: number): Frame {
    const f = this.frameAt(offsetU)
    if (f.startU !== offsetU) {
      throw new InvalidArgumentError(`expected a frame start, found mid-frame offset ${offsetU} (frame starts at ${f.startU})`)
    }
    return f
  }

  /** The frames holding [offsetU, offsetU+length); InvalidArgumentError if any byte is not covered. */
  framesForRange(offsetU: number, length: number): Frame[] {
    if (length <= 0) return []
    const end = offsetU + length
    const out: Frame[] = []
    let i = this.indexOf(offsetU)
    let pos = offsetU
    while (pos < end) {
      const f = i >= 0 && i < this.frames.length ? this.frames[i] : undefined
      if (f === undefined || f.startU > pos) {
        throw new InvalidArgumentError(`expected [${offsetU}, ${end}) covered by frames, found a gap at ${pos}`)
      }
      out.push(f)
      pos = f.startU + f.sizeU
      i++
    }
    return out
  }

  /**
   * Keeps only the frames that some range [start, end) touches (V4 and V5 store only those).
   * Ranges may come unsorted and overlapping. O(r log r + r log n + kept).
   */
  trim(ranges: readonly ByteRange[]): FrameTable {
    const sorted = ranges.filter((r) => r.end > r.start).sort((a, b) => a.start - b.start)
    const kept: Frame[] = []
    let next = 0 // first frame index not yet kept: frames are visited at most once
    for (const r of sorted) {
      let i = Math.max(next, this.firstEndingAfter(r.start))
      for (; i < this.frames.length && this.frames[i].startU < r.end; i++) kept.push(this.frames[i])
      next = Math.max(next, i)
    }
    return new FrameTable(this.codec, kept)
  }

  /**
   * The format's limits: ≤ 2^20 frames, sizes in (0, 2^31), offsets non-negative safe integers, startU and
   * startC strictly increasing with no overlap (gaps allowed: trimmed tables). `codec none` with frames
   * is a V4 rule and is checked by the header codec. Throws FormatError (or `Err`), LimitError for the
   * count; `context` prefixes the messages.
   */
  validate(Err: new (msg: string) => Error = FormatError, context = 'frame table'): void {
    const n = this.frames.length
    if (n > MAX_FRAMES_PER_TABLE) throw new LimitError(`${context}: expected <= ${MAX_FRAMES_PER_TABLE} frames, found ${n}`)
    let endU = 0
    let endC = 0
    for (let i = 0; i < n; i++) {
      const f = this.frames[i]
      if (!isSize(f.sizeU) || !isSize(f.sizeC)) {
        throw new Err(`${context}: frame ${i} of ${n}: expected sizes in [1, ${MAX_FRAME_SIZE}], found sizeU ${f.sizeU}, sizeC ${f.sizeC}`)
      }
      if (!isOffset(f.startU) || !isOffset(f.startC) || f.startU < endU || f.startC < endC) {
        throw new Err(`${context}: frame ${i} of ${n}: expected startU >= ${endU} and startC >= ${endC}, found ${f.startU} and ${f.startC}`)
      }
      endU = f.startU + f.sizeU
      endC = f.startC + f.sizeC
      if (!Number.isSafeInteger(endU) || !Number.isSafeInteger(endC)) throw new Err(`${context}: frame ${i} of ${n}: ends beyond 2^53`)
    }
  }

  /** Index of the first frame whose end is after `offsetU` (frames.length if none). */
  private firstEndingAfter(offsetU: number): number {
    let lo = 0
    let hi = this.frames.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const f = this.frames[mid]
      if (f.startU + f.sizeU <= offsetU) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

function isSize(v: number): boolean {
  return Number.isInteger(v) && v > 0 && v <= MAX_FRAME_SIZE
}

function isOffset(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0
}
