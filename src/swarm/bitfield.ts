/**
 * Which frames of one build file a node holds (or is fetching): one bit per frame of the file's frame
 * table, frame i = bit (i % 8) of byte i / 8 (least significant bit first). The length is the frame
 * table's length, never more than a table may have (MAX_FRAMES_PER_TABLE), so a bitfield is at most
 * 128 KiB whatever a peer claims.
 */
import { FormatError, InvalidArgumentError, LimitError } from '../errors.ts'
import { MAX_FRAMES_PER_TABLE } from '../format/frame-table.ts'

/** Bytes a bitfield of `length` frames takes. */
export function bitfieldBytes(length: number): number {
  return Math.ceil(length / 8)
}

/** Throws LimitError unless `length` is a frame count a frame table can have. */
export function checkFrameCount(length: number, what: string): void {
  if (!Number.isSafeInteger(length) || length < 0 || length > MAX_FRAMES_PER_TABLE) {
    throw new LimitError(`${what}: frame count ${length}, expected 0..${MAX_FRAMES_PER_TABLE}`)
  }
}

export class FrameBitfield {
  /** Frames the bitfield covers (the frame table's length). */
  readonly length: number
  private readonly bits: Uint8Array
  private ones = 0

  constructor(length: number) {
    checkFrameCount(length, 'bitfield')
    this.length = length
    this.bits = new Uint8Array(bitfieldBytes(length))
  }

  /**
   * A bitfield from its bytes (a peer's message): exactly bitfieldBytes(length) bytes, and the unused
   * bits of the last byte zero, else FormatError. Copies the bytes.
   */
  static fromBytes(length: number, bytes: Uint8Array): FrameBitfield {
    const b = new FrameBitfield(length)
    if (bytes.byteLength !== b.bits.byteLength) {
      throw new FormatError(`bitfield of ${length} frames: ${bytes.byteLength} bytes, expected ${b.bits.byteLength}`)
    }
    const spare = length % 8
    if (spare !== 0 && bytes[bytes.byteLength - 1] >> spare !== 0) {
      throw new FormatError(`bitfield of ${length} frames: bits set past the last frame`)
    }
    b.bits.set(bytes)
    for (const byte of b.bits) b.ones += popcount(byte)
    return b
  }

  has(i: number): boolean {
    return this.inRange(i) && (this.bits[i >> 3] & (1 << (i & 7))) !== 0
  }

  /** Set frame i; false if it was set already. */
  set(i: number): boolean {
    this.check(i)
    const mask = 1 << (i & 7)
    if (this.bits[i >> 3] & mask) return false
    this.bits[i >> 3] |= mask
    this.ones++
    return true
  }

  /** Clear frame i; false if it was clear already. */
  clear(i: number): boolean {
    this.check(i)
    const mask = 1 << (i & 7)
    if (!(this.bits[i >> 3] & mask)) return false
    this.bits[i >> 3] &= ~mask
    this.ones--
    return true
  }

  /** Frames set. */
  get count(): number {
    return this.ones
  }

  /** Indices of the frames set, ascending. */
  *indices(): Generator<number> {
    for (let byte = 0; byte < this.bits.length; byte++) {
      const v = this.bits[byte]
      if (v === 0) continue
      for (let bit = 0; bit < 8; bit++) if (v & (1 << bit)) yield byte * 8 + bit
    }
  }

  /** A copy of the bytes (what goes on the wire). */
  toBytes(): Uint8Array {
    return this.bits.slice()
  }

  private inRange(i: number): boolean {
    return Number.isInteger(i) && i >= 0 && i < this.length
  }

  private check(i: number): void {
    if (!this.inRange(i)) throw new InvalidArgumentError(`frame index ${i}, expected 0..${this.length - 1}`)
  }
}

function popcount(v: number): number {
  let n = 0
  for (let x = v; x; x &= x - 1) n++
  return n
}
