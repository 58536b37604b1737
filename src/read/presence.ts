/**
 * The record of which pages of a chunk-cache data file hold verified bytes: one bit per 4 KiB page,
 * persisted next to the sparse file so a restart keeps the cache.
 *
 * File format (little-endian): `magic "SSPM" · version u32 (1) · pageSize u32 · pages u32`, then
 * ceil(pages / 8) bytes of bits, page i = bit (i & 7) of byte (i >> 3). A file that does not parse is
 * treated as "nothing present": losing the record only costs refetches, never wrong bytes.
 */
import { open, readFile, rename, rm } from 'node:fs/promises'
import { PAGE_SIZE } from './constants.ts'

const MAGIC = 0x4d505353 // "SSPM"
const VERSION = 1
const HEADER_BYTES = 16

export class PresenceMap {
  private bits: Uint8Array
  /** Pages present. */
  count = 0
  /** Bumped on every change; a save records which generation it wrote. */
  private generation = 0
  private savedGeneration = 0

  constructor(bits: Uint8Array = new Uint8Array(0)) {
    this.bits = bits
    for (const b of bits) this.count += popcount(b)
  }

  get dirty(): boolean {
    return this.generation !== this.savedGeneration
  }

  has(page: number): boolean {
    const byte = page >>> 3
    return byte < this.bits.length && (this.bits[byte] & (1 << (page & 7))) !== 0
  }

  /** The first page in [first, end) that is not present, or -1. */
  firstMissing(first: number, end: number): number {
    for (let p = first; p < end; p++) {
      // Skip whole bytes of present pages: a 2 MiB read is 512 bits.
      if ((p & 7) === 0 && p + 8 <= end && this.bits[p >>> 3] === 0xff) {
        p += 7
        continue
      }
      if (!this.has(p)) return p
    }
    return -1
  }

  /** Mark [first, end) present; returns how many pages were newly marked. */
  setRange(first: number, end: number): number {
    this.grow(end)
    let added = 0
    for (let p = first; p < end; p++) {
      const mask = 1 << (p & 7)
      if ((this.bits[p >>> 3] & mask) === 0) {
        this.bits[p >>> 3] |= mask
        added++
      }
    }
    if (added > 0) {
      this.count += added
      this.generation++
    }
    return added
  }

  /** A copy of the current bits to save, with the generation it represents. */
  snapshot(): { bytes: Uint8Array; generation: number } {
    const pages = this.bits.length * 8
    const out = Buffer.alloc(HEADER_BYTES + this.bits.length)
    out.writeUInt32LE(MAGIC, 0)
    out.writeUInt32LE(VERSION, 4)
    out.writeUInt32LE(PAGE_SIZE, 8)
    out.writeUInt32LE(pages, 12)
    out.set(this.bits, HEADER_BYTES)
    return { bytes: out, generation: this.generation }
  }

  /** Write a snapshot atomically (temp + rename); the caller has made the data durable first. */
  async save(path: string, snap: { bytes: Uint8Array; generation: number }): Promise<void> {
    const tmp = `${path}.tmp`
    const fh = await open(tmp, 'w')
    try {
      await fh.writeFile(snap.bytes)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
    this.savedGeneration = Math.max(this.savedGeneration, snap.generation)
  }

  static async load(path: string): Promise<PresenceMap> {
    const buf = await readFile(path).catch(() => null)
    if (buf === null || !isValid(buf)) {
      if (buf !== null) await rm(path, { force: true })
      return new PresenceMap()
    }
    return new PresenceMap(new Uint8Array(buf.subarray(HEADER_BYTES)))
  }

  private grow(pages: number): void {
    const need = Math.ceil(pages / 8)
    if (need <= this.bits.length) return
    // Doubling keeps sequential growth amortised O(1) per page.
    const next = new Uint8Array(Math.max(need, this.bits.length * 2))
    next.set(this.bits)
    this.bits = next
  }
}

function isValid(buf: Buffer): boolean {
  if (buf.length < HEADER_BYTES) return false
  if (buf.readUInt32LE(0) !== MAGIC || buf.readUInt32LE(4) !== VERSION || buf.readUInt32LE(8) !== PAGE_SIZE) return false
  return buf.length === HEADER_BYTES + Math.ceil(buf.readUInt32LE(12) / 8)
}

function popcount(b: number): number {
  let n = 0
  for (let x = b; x !== 0; x &= x - 1) n++
  return n
}
