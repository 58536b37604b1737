/**
 * The record of which pages of a chunk-cache data file hold verified bytes, and what those bytes
 * were: one bit per 4 KiB page plus the CRC-32 of every present page, computed from the verified
 * buffer before it was written. It is persisted next to the sparse file so a restart keeps the cache,
 * and the CRCs let the bytes be checked again the first time each page is read after an open: a disk
 * that rotted or lost part of the file while the node was stopped costs a refetch, never wrong bytes.
 *
 * A second, in-memory bitmap says which present pages were checked (or written) since this record
 * was loaded; the hot path tests only that one, so a page is checked once per open, not per read.
 *
 * Why a CRC per page and not per frame: the same data file is written under several frame
 * geometries (a pending header's frames, then the final header's, which may differ and overlap),
 * and the fault a guest takes is one page; a per-page digest needs no geometry and checks a 4 KiB
 * read with a 4 KiB CRC. Its cost is 4 bytes per present page (1/1024 of the data), kept sparse in
 * memory (chunks of CRC_CHUNK_PAGES pages are allocated only where pages are present).
 *
 * File format (little-endian): `magic "SSPM" · version u32 (2) · pageSize u32 · pages u32`, then
 * ceil(pages / 8) bytes of bits (page i = bit (i & 7) of byte (i >> 3)), then one u32 CRC-32 per
 * present page in page order, then a u32 CRC-32 of everything before it. A record that does not
 * parse, is cut short or fails its own checksum is treated as "nothing present" and removed: losing
 * the record only costs refetches, trusting a broken one could serve wrong bytes.
 */
import { open, readFile, rename, rm, stat } from 'node:fs/promises'
import { crc32 } from 'node:zlib'
import { PAGE_SIZE } from './constants.ts'

const MAGIC = 0x4d505353 // "SSPM"
const VERSION = 2
const HEADER_BYTES = 16
/** Pages per in-memory CRC chunk: 4 MiB of data, 4 KiB of CRCs. */
const CRC_CHUNK_PAGES = 1024
/** Largest data file a record may describe (4 TiB); a bigger claim is a corrupt record. */
const MAX_PAGES = 2 ** 30
const MAX_RECORD_BYTES = HEADER_BYTES + MAX_PAGES / 8 + 4 * MAX_PAGES + 4
const ZERO_PAGE = new Uint8Array(PAGE_SIZE)

/**
 * The CRC-32 of one page of data as the cache records it: the bytes given, zero-padded to a whole
 * page (the last page of a data file is short; its file tail reads as zeros or not at all).
 */
export function pageCrc(bytes: Uint8Array): number {
  const c = crc32(bytes)
  return bytes.byteLength >= PAGE_SIZE ? c : crc32(ZERO_PAGE.subarray(0, PAGE_SIZE - bytes.byteLength), c)
}

/** The CRC of every page of `plain`, which starts on a page boundary. */
export function pageCrcs(plain: Uint8Array): Uint32Array {
  const out = new Uint32Array(Math.ceil(plain.byteLength / PAGE_SIZE))
  for (let i = 0; i < out.length; i++) out[i] = pageCrc(plain.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE))
  return out
}

export class PresenceMap {
  private bits: Uint8Array
  /** Present pages checked against their CRC (or written) since load; never persisted. */
  private checked: Uint8Array
  private readonly crcs = new Map<number, Uint32Array>()
  /** Pages present. */
  count = 0
  /** Bumped on every change; a save records which generation it wrote. */
  private generation = 0
  private savedGeneration = 0

  constructor(bits: Uint8Array = new Uint8Array(0)) {
    this.bits = bits
    this.checked = new Uint8Array(bits.length)
    for (const b of bits) this.count += popcount(b)
  }

  get dirty(): boolean {
    return this.generation !== this.savedGeneration
  }

  has(page: number): boolean {
    return testBit(this.bits, page)
  }

  isChecked(page: number): boolean {
    return testBit(this.checked, page)
  }

  /** The first page in [first, end) that is not present, or -1. */
  firstMissing(first: number, end: number): number {
    return firstClear(this.bits, first, end)
  }

  /** Every page of [first, end) present and checked since load: the hot path's one test. */
  allChecked(first: number, end: number): boolean {
    return firstClear(this.checked, first, end) === -1
  }

  /** The recorded CRC of a present page. */
  crcOf(page: number): number {
    return this.crcs.get(Math.floor(page / CRC_CHUNK_PAGES))?.[page % CRC_CHUNK_PAGES] ?? 0
  }

  /** Mark [first, first + crcs.length) present and checked with these CRCs; returns pages newly present. */
  setRange(first: number, crcs: Uint32Array): number {
    const end = first + crcs.length
    this.grow(end)
    let added = 0
    for (let p = first; p < end; p++) {
      const mask = 1 << (p & 7)
      if ((this.bits[p >>> 3] & mask) === 0) {
        this.bits[p >>> 3] |= mask
        added++
      }
      this.checked[p >>> 3] |= mask
      this.setCrc(p, crcs[p - first])
    }
    this.count += added
    this.generation++ // the CRCs changed even where no page was added (a rewrite)
    return added
  }

  /** A present page whose bytes matched its CRC. */
  markChecked(page: number): void {
    if (this.has(page)) this.checked[page >>> 3] |= 1 << (page & 7)
  }

  /** Forget the pages of [first, end) (bad or lost bytes); returns how many were present. */
  drop(first: number, end: number): number {
    let dropped = 0
    const stop = Math.min(end, this.bits.length * 8)
    for (let p = first; p < stop; p++) {
      const mask = 1 << (p & 7)
      if ((this.bits[p >>> 3] & mask) === 0) continue
      this.bits[p >>> 3] &= ~mask
      this.checked[p >>> 3] &= ~mask
      this.setCrc(p, 0)
      dropped++
    }
    if (dropped > 0) {
      this.count -= dropped
      this.generation++
    }
    return dropped
  }

  /** Forget every page from `first` on (the data file ends before it). */
  dropFrom(first: number): number {
    return this.drop(first, this.bits.length * 8)
  }

  /** The record of the current state to save, with the generation it represents. */
  snapshot(): { bytes: Uint8Array; generation: number } {
    const pages = this.bits.length * 8
    const out = Buffer.alloc(HEADER_BYTES + this.bits.length + 4 * this.count + 4)
    out.writeUInt32LE(MAGIC, 0)
    out.writeUInt32LE(VERSION, 4)
    out.writeUInt32LE(PAGE_SIZE, 8)
    out.writeUInt32LE(pages, 12)
    out.set(this.bits, HEADER_BYTES)
    const at = HEADER_BYTES + this.bits.length
    putU32s(out, at, this.presentCrcs())
    const end = at + 4 * this.count
    out.writeUInt32LE(crc32(out.subarray(0, end)), end)
    return { bytes: out, generation: this.generation }
  }

  /** The CRCs of the present pages in page order (a chunk of CRCs at a time: an 8 GiB file is 2M pages). */
  private presentCrcs(): Uint32Array {
    const out = new Uint32Array(this.count)
    let n = 0
    this.eachChunk((key, chunk, full) => {
      if (full) {
        out.set(chunk, n) // the common case (a file read sequentially): one copy per chunk
        n += CRC_CHUNK_PAGES
        return
      }
      for (let i = 0; i < CRC_CHUNK_PAGES; i++) if (this.has(key * CRC_CHUNK_PAGES + i)) out[n++] = chunk[i]
    })
    return out
  }

  /** The inverse of presentCrcs: `list` holds the CRC of every present page in page order. */
  private assignCrcs(list: Uint32Array): void {
    let n = 0
    this.eachChunk((key, chunk, full) => {
      if (full) {
        chunk.set(list.subarray(n, n + CRC_CHUNK_PAGES))
        n += CRC_CHUNK_PAGES
        return
      }
      for (let i = 0; i < CRC_CHUNK_PAGES; i++) if (this.has(key * CRC_CHUNK_PAGES + i)) chunk[i] = list[n++]
    })
  }

  /**
   * Calls `fn` for every CRC chunk with a present page (allocating it if needed), in page order, with
   * whether all of its pages are present.
   */
  private eachChunk(fn: (key: number, chunk: Uint32Array, full: boolean) => void): void {
    const perChunk = CRC_CHUNK_PAGES / 8
    for (let key = 0; key * perChunk < this.bits.length; key++) {
      const from = key * perChunk
      const to = Math.min(this.bits.length, from + perChunk)
      let or = 0
      let and = 0xff
      for (let i = from; i < to; i++) {
        or |= this.bits[i]
        and &= this.bits[i]
      }
      if (or === 0) continue
      let chunk = this.crcs.get(key)
      if (!chunk) {
        chunk = new Uint32Array(CRC_CHUNK_PAGES)
        this.crcs.set(key, chunk)
      }
      fn(key, chunk, to - from === perChunk && and === 0xff)
    }
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

  /** The saved record, or an empty map (and the file removed) when it is missing, broken or too large. */
  static async load(path: string): Promise<PresenceMap> {
    const size = (await stat(path).catch(() => null))?.size
    if (size === undefined) return new PresenceMap()
    const buf = size <= MAX_RECORD_BYTES ? await readFile(path).catch(() => null) : null
    const map = buf === null ? null : PresenceMap.parse(buf)
    if (map === null) await rm(path, { recursive: true, force: true }) // even a directory in its place
    return map ?? new PresenceMap()
  }

  /** A record's map, or null when any part of it is wrong (its own checksum covers every byte). */
  private static parse(buf: Buffer): PresenceMap | null {
    if (buf.length < HEADER_BYTES + 4) return null
    if (buf.readUInt32LE(0) !== MAGIC || buf.readUInt32LE(4) !== VERSION || buf.readUInt32LE(8) !== PAGE_SIZE) return null
    const pages = buf.readUInt32LE(12)
    if (pages > MAX_PAGES) return null
    const bitsEnd = HEADER_BYTES + Math.ceil(pages / 8)
    if (buf.length < bitsEnd + 4) return null
    const map = new PresenceMap(new Uint8Array(buf.subarray(HEADER_BYTES, bitsEnd)))
    const crcEnd = bitsEnd + 4 * map.count
    if (buf.length !== crcEnd + 4 || crc32(buf.subarray(0, crcEnd)) !== buf.readUInt32LE(crcEnd)) return null
    map.assignCrcs(getU32s(buf, bitsEnd, map.count))
    return map
  }

  private setCrc(page: number, crc: number): void {
    const key = Math.floor(page / CRC_CHUNK_PAGES)
    let chunk = this.crcs.get(key)
    if (!chunk) {
      if (crc === 0) return
      chunk = new Uint32Array(CRC_CHUNK_PAGES)
      this.crcs.set(key, chunk)
    }
    chunk[page % CRC_CHUNK_PAGES] = crc
  }

  private grow(pages: number): void {
    const need = Math.ceil(pages / 8)
    if (need <= this.bits.length) return
    // Doubling keeps sequential growth amortised O(1) per page.
    const size = Math.max(need, this.bits.length * 2)
    this.bits = copyInto(new Uint8Array(size), this.bits)
    this.checked = copyInto(new Uint8Array(size), this.checked)
  }
}

function testBit(bits: Uint8Array, page: number): boolean {
  const byte = page >>> 3
  return byte < bits.length && (bits[byte] & (1 << (page & 7))) !== 0
}

/** The first page in [first, end) whose bit is clear, or -1. */
function firstClear(bits: Uint8Array, first: number, end: number): number {
  for (let p = first; p < end; p++) {
    // Skip whole bytes of set bits: a 2 MiB read is 512 bits.
    if ((p & 7) === 0 && p + 8 <= end && bits[p >>> 3] === 0xff) {
      p += 7
      continue
    }
    if (!testBit(bits, p)) return p
  }
  return -1
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/** Write `list` as little-endian u32s at `at`. */
function putU32s(out: Buffer, at: number, list: Uint32Array): void {
  if (LITTLE_ENDIAN) out.set(new Uint8Array(list.buffer, list.byteOffset, list.byteLength), at)
  else for (let i = 0; i < list.length; i++) out.writeUInt32LE(list[i], at + 4 * i)
}

/** `n` little-endian u32s from `at`. */
function getU32s(buf: Buffer, at: number, n: number): Uint32Array {
  const list = new Uint32Array(n)
  if (LITTLE_ENDIAN) new Uint8Array(list.buffer).set(buf.subarray(at, at + 4 * n))
  else for (let i = 0; i < n; i++) list[i] = buf.readUInt32LE(at + 4 * i)
  return list
}

function copyInto(dst: Uint8Array, src: Uint8Array): Uint8Array {
  dst.set(src)
  return dst
}

function popcount(b: number): number {
  let n = 0
  for (let x = b; x !== 0; x &= x - 1) n++
  return n
}
