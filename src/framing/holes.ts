/**
 * All-zero blocks as holes. e2b-dev/infra maps every block of a build file that is all zeros to the
 * nil build (uuid all-zero) and leaves it out of the data file; readers answer zeros for it without
 * any I/O. snapswarm does the same while framing: each block (the header's block size, at least
 * 4 KiB) is checked as it is read, a zero block is dropped from the stored stream, and its range is
 * recorded as a hole. The frame table, the chunk digests of a raw build and the SHA-256 in the header
 * then describe only the stored (non-zero) bytes; the header maps the holes to the nil build.
 *
 * A hole is only ever a whole number of 4 KiB pages starting on a block boundary, so every nil
 * mapping is 4 KiB-aligned (e2b refuses headers with other mappings): a last block that is not a
 * multiple of 4 KiB long is stored even when it is zero.
 *
 * The number of holes is bounded (MAX_HOLES): each becomes up to two header mappings. Past the bound
 * zero blocks are stored like any others; the list is deterministic (the same file and block size
 * always give the same holes), so a second pass over the same bytes agrees with the first.
 */
import { InvalidArgumentError } from '../errors.ts'
import type { ByteRange } from '../format/frame-table.ts'

/** Holes are whole pages: e2b's header rule is that every mapping is a multiple of 4 KiB. */
export const HOLE_ALIGN = 4096
/** At most this many holes per data file (adjacent zero blocks make one hole). */
export const MAX_HOLES = 1 << 18

/**
 * True when every byte of `b` is zero. Samples three bytes first (most non-zero blocks fail there),
 * then compares the block with itself shifted by one byte (a memcmp, no allocation): equal exactly
 * when every byte equals the first, which the sample showed is zero. The same test as e2b's IsZero.
 */
export function isZero(b: Uint8Array): boolean {
  const n = b.byteLength
  if (n === 0) return true
  if ((b[0] | b[n - 1] | b[n >>> 1]) !== 0) return false
  if (n <= 3) return true
  const buf = Buffer.from(b.buffer, b.byteOffset, n)
  return buf.compare(buf, 1, n, 0, n - 1) === 0
}

/**
 * The size of the blocks checked for zeros for a file of `blockSize` framed in `frameSize` frames, or
 * undefined when holes cannot be made: the block must be a multiple of 4 KiB (mappings stay page
 * aligned) and divide the frame size (so a frame is always filled with whole blocks).
 */
export function zeroBlockFor(blockSize: number, frameSize: number): number | undefined {
  if (!Number.isSafeInteger(blockSize) || blockSize <= 0 || blockSize % HOLE_ALIGN !== 0) return undefined
  if (!Number.isSafeInteger(frameSize) || frameSize % blockSize !== 0) return undefined
  return blockSize
}

/** Throws unless `zeroBlock` is one zeroBlockFor could have returned for `frameSize`. */
export function checkZeroBlock(zeroBlock: number, frameSize: number): void {
  if (zeroBlockFor(zeroBlock, frameSize) !== zeroBlock) {
    throw new InvalidArgumentError(`zero block: expected a multiple of ${HOLE_ALIGN} that divides the frame size ${frameSize}, found ${zeroBlock}`)
  }
}

/** The holes of one data file, in input order, adjacent ones joined; bounded by `max`. */
export class HoleList {
  readonly ranges: ByteRange[] = []
  /** Total bytes in holes. */
  bytes = 0
  private readonly max: number

  constructor(max = MAX_HOLES) {
    this.max = max
  }

  /** Record [start, start + length) as a hole; false (and nothing recorded) when the list is full. */
  add(start: number, length: number): boolean {
    const last = this.ranges[this.ranges.length - 1]
    if (last !== undefined && last.end === start) {
      this.ranges[this.ranges.length - 1] = { start: last.start, end: start + length }
    } else {
      if (this.ranges.length >= this.max) return false
      this.ranges.push({ start, end: start + length })
    }
    this.bytes += length
    return true
  }
}

/**
 * Look at `chunk` (the input bytes at input offset `pos`, which is a multiple of `zeroBlock`) block by
 * block: zero blocks are recorded in `holes`, and with `compact` the other blocks are moved down over
 * them in place. Returns how many bytes are kept (with `compact`: `chunk[0, kept)` is what to store).
 */
export function dropZeroBlocks(chunk: Buffer, pos: number, zeroBlock: number, holes: HoleList, compact: boolean): number {
  let kept = 0
  for (let off = 0; off < chunk.byteLength; off += zeroBlock) {
    const len = Math.min(zeroBlock, chunk.byteLength - off)
    if (len % HOLE_ALIGN === 0 && isZero(chunk.subarray(off, off + len)) && holes.add(pos + off, len)) continue
    if (compact && kept !== off) chunk.copyWithin(kept, off, off + len)
    kept += len
  }
  return kept
}

/**
 * A child's holes in virtual coordinates. Its data file is its dirty ranges packed in order; `holes`
 * are ranges of that packed input. Returns the dirty ranges that stay stored and the ranges that
 * become zeros (nil mappings that shadow the parent), both sorted and disjoint.
 */
export function splitDirty(dirty: readonly ByteRange[], holes: readonly ByteRange[]): { dirty: ByteRange[]; empty: ByteRange[] } {
  const kept: ByteRange[] = []
  const empty: ByteRange[] = []
  let h = 0
  let packed = 0 // input offset of the current dirty range's start
  for (const r of dirty) {
    const len = r.end - r.start
    let cursor = r.start
    while (h < holes.length && holes[h].start < packed + len) {
      const s = Math.max(holes[h].start, packed)
      const e = Math.min(holes[h].end, packed + len)
      if (r.start + (s - packed) > cursor) kept.push({ start: cursor, end: r.start + (s - packed) })
      empty.push({ start: r.start + (s - packed), end: r.start + (e - packed) })
      cursor = r.start + (e - packed)
      if (holes[h].end > packed + len) break // the hole goes on into the next dirty range
      h++
    }
    if (cursor < r.end) kept.push({ start: cursor, end: r.end })
    packed += len
  }
  return { dirty: kept, empty: joinAdjacent(empty) }
}

/** Joins ranges that touch (a hole spanning two adjacent dirty ranges is one nil range). */
function joinAdjacent(ranges: ByteRange[]): ByteRange[] {
  const out: ByteRange[] = []
  for (const r of ranges) {
    const last = out[out.length - 1]
    if (last !== undefined && last.end === r.start) out[out.length - 1] = { start: last.start, end: r.end }
    else out.push(r)
  }
  return out
}
