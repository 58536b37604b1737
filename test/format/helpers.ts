/**
 * Shared test helpers for the format tests: deterministic data and random numbers (nothing from src/
 * outside src/format, so these tests stand alone; the generator is shared with the benches).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { rng } from '../../bench/lib/rng.ts'

export { rng }

export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1))
}

/** VM-like bytes: 4 KiB pages of zeros, text, counters, or noise. */
export function vmLike(n: number, seed = 1): Buffer {
  const r = rng(seed)
  const out = Buffer.alloc(n)
  const words = 'kernel page memory buffer socket inode cache lock mutex frame header build layer '.split(' ')
  for (let p = 0; p < n; p += 4096) {
    const page = out.subarray(p, Math.min(n, p + 4096))
    const kind = r()
    if (kind < 0.35) continue
    if (kind < 0.6) {
      for (let o = 0; o + 8 <= page.length; o += 16) page.writeUInt32LE(p + o, o)
    } else if (kind < 0.85) {
      let o = 0
      while (o < page.length) o += page.write(`${words[Math.floor(r() * words.length)]} `, o, 'latin1')
    } else {
      let block = createHash('sha256').update(`${seed}:${p}`).digest()
      for (let o = 0; o < page.length; o += 32) {
        block.copy(page, o)
        block = createHash('sha256').update(block).digest()
      }
    }
  }
  return out
}

/** Hex string → bytes (for hand-written golden values). */
export function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/[^0-9a-f]/gi, ''), 'hex'))
}

/** Little-endian field writer over a DataView, for the expected bytes only. */
export class Golden {
  readonly view: DataView
  pos = 0
  constructor(size: number) {
    this.view = new DataView(new ArrayBuffer(size))
  }
  u8(v: number) {
    this.view.setUint8(this.pos, v)
    this.pos += 1
    return this
  }
  u32(v: number) {
    this.view.setUint32(this.pos, v, true)
    this.pos += 4
    return this
  }
  i32(v: number) {
    this.view.setInt32(this.pos, v, true)
    this.pos += 4
    return this
  }
  u64(v: number) {
    this.view.setBigUint64(this.pos, BigInt(v), true)
    this.pos += 8
    return this
  }
  i64(v: number) {
    this.view.setBigInt64(this.pos, BigInt(v), true)
    this.pos += 8
    return this
  }
  raw(b: ArrayLike<number>) {
    for (let i = 0; i < b.length; i++) this.view.setUint8(this.pos + i, b[i])
    this.pos += b.length
    return this
  }
  bytes(): Uint8Array {
    assert.equal(this.pos, this.view.byteLength, 'golden buffer filled exactly')
    return new Uint8Array(this.view.buffer)
  }
}
