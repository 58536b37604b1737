/**
 * The one bounds-checked little-endian reader every binary parser goes through,
 * and its writer. Integers are JS numbers: a u64/i64 outside the safe-integer range is rejected, never
 * rounded (types.ts). Every length is checked against the bytes that remain before anything is read
 * or allocated, so hostile input ends in a FormatError, not a huge allocation.
 */
import { FormatError, InvalidArgumentError } from '../errors.ts'
import type { BuildId } from './types.ts'
import { uuidFromBytes, uuidToBytes } from './uuid.ts'

const TWO_32 = 0x1_0000_0000
/** High 32-bit word bound for a safe integer: 2^53 = 2^21 × 2^32. */
const SAFE_HI = 0x20_0000

export class ByteReader {
  private readonly buf: Uint8Array
  private readonly what: string
  private readonly view: DataView
  private pos = 0

  /** `what` names the input in error messages (`V4 header body`, `frame table`, ...). */
  constructor(buf: Uint8Array, what = 'input') {
    this.buf = buf
    this.what = what
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  get offset(): number {
    return this.pos
  }

  get remaining(): number {
    return this.buf.byteLength - this.pos
  }

  /** Throws a FormatError "what: field: expected X, found Y at offset Z". */
  fail(field: string, expected: string, found: string | number, at = this.pos): never {
    throw new FormatError(`${this.what}: ${field}: expected ${expected}, found ${found} at offset ${at}`)
  }

  /** Checks that `n` more bytes exist (n itself may come from the input: checked first). */
  need(n: number, field: string): void {
    if (!Number.isSafeInteger(n) || n < 0) this.fail(field, 'a byte count', n)
    if (n > this.remaining) this.fail(field, `${n} bytes`, `${this.remaining} bytes left`)
  }

  u8(field: string): number {
    this.need(1, field)
    return this.view.getUint8(this.pos++)
  }

  u32(field: string): number {
    this.need(4, field)
    const v = this.view.getUint32(this.pos, true)
    this.pos += 4
    return v
  }

  /** Signed 32-bit; `min` is the smallest value the format allows (sizes pass 1). */
  i32(field: string, min = -0x8000_0000): number {
    this.need(4, field)
    const v = this.view.getInt32(this.pos, true)
    if (v < min) this.fail(field, `i32 >= ${min}`, v)
    this.pos += 4
    return v
  }

  u64(field: string): number {
    this.need(8, field)
    const lo = this.view.getUint32(this.pos, true)
    const hi = this.view.getUint32(this.pos + 4, true)
    if (hi >= SAFE_HI) this.fail(field, 'u64 <= 2^53-1', ((BigInt(hi) << 32n) | BigInt(lo)).toString())
    this.pos += 8
    return hi * TWO_32 + lo
  }

  /** Signed 64-bit; `min` is the smallest value the format allows (offsets pass 0). */
  i64(field: string, min = Number.MIN_SAFE_INTEGER): number {
    this.need(8, field)
    const lo = this.view.getUint32(this.pos, true)
    const hi = this.view.getInt32(this.pos + 4, true)
    const v = hi * TWO_32 + lo
    if (hi >= SAFE_HI || hi < -SAFE_HI || !Number.isSafeInteger(v) || v < min) {
      this.fail(field, `i64 in [${min}, 2^53-1]`, BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)).toString())
    }
    this.pos += 8
    return v
  }

  /** 16 raw bytes → canonical lowercase UUID string. */
  uuid(field: string): BuildId {
    this.need(16, field)
    const id = uuidFromBytes(this.buf.subarray(this.pos, this.pos + 16))
    this.pos += 16
    return id
  }

  /** A copy of the next `n` bytes; `n` is checked against what remains before allocating. */
  bytes(n: number, field: string): Uint8Array {
    this.need(n, field)
    // Not buf.slice(): on a Buffer that is a view, and a view would pin the whole input.
    const out = new Uint8Array(n)
    out.set(this.buf.subarray(this.pos, this.pos + n))
    this.pos += n
    return out
  }

  /** The rest of the input, as a view (no copy). */
  rest(): Uint8Array {
    const out = this.buf.subarray(this.pos)
    this.pos = this.buf.byteLength
    return out
  }

  /** Trailing bytes are an error: a format that stops early must not silently ignore them. */
  expectEnd(): void {
    if (this.remaining !== 0) this.fail('end', 'end of input', `${this.remaining} trailing bytes`)
  }
}

/** Growable little-endian writer. Values out of range are caller bugs: InvalidArgumentError. */
export class ByteWriter {
  private buf: Uint8Array
  private view: DataView
  private pos = 0

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity))
    this.view = new DataView(this.buf.buffer)
  }

  get length(): number {
    return this.pos
  }

  u8(v: number): this {
    checkInt(v, 0, 0xff, 'u8')
    this.reserve(1).setUint8(this.pos++, v)
    return this
  }

  u32(v: number): this {
    checkInt(v, 0, 0xffff_ffff, 'u32')
    this.reserve(4).setUint32(this.pos, v, true)
    this.pos += 4
    return this
  }

  i32(v: number): this {
    checkInt(v, -0x8000_0000, 0x7fff_ffff, 'i32')
    this.reserve(4).setInt32(this.pos, v, true)
    this.pos += 4
    return this
  }

  u64(v: number): this {
    checkInt(v, 0, Number.MAX_SAFE_INTEGER, 'u64')
    return this.word64(v)
  }

  i64(v: number): this {
    checkInt(v, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'i64')
    return this.word64(v)
  }

  uuid(id: BuildId): this {
    return this.bytes(uuidToBytes(id))
  }

  bytes(b: Uint8Array): this {
    this.reserve(b.byteLength)
    this.buf.set(b, this.pos)
    this.pos += b.byteLength
    return this
  }

  /** The written bytes (a view of the internal buffer; the writer must not be used afterwards). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }

  /** Two's complement split into 32-bit words; exact for every safe integer. */
  private word64(v: number): this {
    const hi = Math.floor(v / TWO_32)
    const view = this.reserve(8)
    view.setUint32(this.pos, v - hi * TWO_32, true)
    view.setInt32(this.pos + 4, hi | 0, true)
    this.pos += 8
    return this
  }

  private reserve(n: number): DataView {
    if (this.pos + n > this.buf.byteLength) {
      const next = new Uint8Array(Math.max(this.buf.byteLength * 2, this.pos + n))
      next.set(this.buf.subarray(0, this.pos))
      this.buf = next
      this.view = new DataView(next.buffer)
    }
    return this.view
  }
}

function checkInt(v: number, min: number, max: number, type: string): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`expected ${type} in [${min}, ${max}], found ${v}`)
  }
}
