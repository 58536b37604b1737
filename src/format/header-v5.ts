/**
 * The mapping section of a version 5 header, as e2b-dev/infra writes and reads it (the rest of a V5
 * header is V4's: metadata, flags, body length, one LZ4 frame holding the builds section, then this
 * section instead of V4's 40-byte records):
 *
 *   u32 M · M × build id [16]       the distinct non-nil build ids, in order of first use
 *   u32 N                           the non-nil mappings
 *   N × uvarint                     offset deltas, in 4 KiB pages (offset[i] - offset[i-1])
 *   N × uvarint                     lengths, in pages
 *   N × varint (zigzag)             storage offset deltas, in pages (negative when switching builds)
 *   N × uvarint                     index into the build id table
 *
 * Nil (zero) mappings are not written: a reader rebuilds every gap, and the tail up to the size
 * rounded up to 4 KiB, as a nil mapping. The unit is always 4 KiB, whatever the header's block size.
 * Varints are LEB128 (Go's encoding/binary); a signed one is zigzag-coded first.
 */
import type { ByteReader, ByteWriter } from './bytes.ts'
import { LimitError } from '../errors.ts'
import { type BuildId, type Mapping, NIL_BUILD_ID } from './types.ts'

/** e2b's mapping unit (its PageSize): every offset, length and storage offset is a multiple of it. */
export const PAGE = 4096
/**
 * e2b's caps: 8 Mi encoded mappings, and fewer than that when they cannot fit its memory bound (the
 * 256 MiB body cap over 42 bytes a mapping: 6,391,320); 65,535 distinct builds; page numbers in a u32.
 */
export const V5_LIMITS = Object.freeze({ maxMappings: 8 << 20, maxMappingsInMemory: Math.floor((256 << 20) / 42), maxBuilds: 0xffff, maxBlockIndex: 0xffff_ffff })

const MAX_VARINT_BYTES = 10

export function alignUp(n: number, unit = PAGE): number {
  return Math.ceil(n / unit) * unit
}

/** Writes the section; every non-nil mapping must be page-aligned (checked by the caller). */
export function writeV5Mappings(w: ByteWriter, mappings: readonly Mapping[]): void {
  const used = mappings.filter((m) => m.buildId !== NIL_BUILD_ID)
  const index = new Map<BuildId, number>()
  for (const m of used) if (!index.has(m.buildId)) index.set(m.buildId, index.size)
  if (index.size > V5_LIMITS.maxBuilds) throw new LimitError(`V5 header: expected <= ${V5_LIMITS.maxBuilds} distinct builds, found ${index.size}`)
  const cap = Math.min(V5_LIMITS.maxMappings, V5_LIMITS.maxMappingsInMemory)
  if (used.length > cap) throw new LimitError(`V5 header: expected <= ${cap} non-nil mappings, found ${used.length}`)
  w.u32(index.size)
  for (const id of index.keys()) w.uuid(id)
  w.u32(used.length)
  let prev = 0
  for (const m of used) {
    uvarint(w, (m.offset - prev) / PAGE)
    prev = m.offset
  }
  for (const m of used) uvarint(w, m.length / PAGE)
  prev = 0
  for (const m of used) {
    const s = m.buildStorageOffset / PAGE
    uvarint(w, zigzag(s - prev))
    prev = s
  }
  for (const m of used) uvarint(w, index.get(m.buildId)!)
}

/** Upper bound of the section's size, for the body size check before writing. */
export function v5MappingsBytes(mappings: readonly Mapping[]): number {
  let n = 0
  const ids = new Set<BuildId>()
  for (const m of mappings) {
    if (m.buildId === NIL_BUILD_ID) continue
    n++
    ids.add(m.buildId)
  }
  return 8 + ids.size * 16 + n * 4 * MAX_VARINT_BYTES
}

/**
 * Reads the section with e2b's checks, in e2b's order; gaps come back as nil mappings. `maxMappings`
 * bounds what is rebuilt (gaps included), checked before any mapping is made.
 */
export function readV5Mappings(r: ByteReader, size: number, maxMappings: number): Mapping[] {
  const sizePages = Math.ceil(size / PAGE)
  if (sizePages > V5_LIMITS.maxBlockIndex) r.fail('size', `<= ${V5_LIMITS.maxBlockIndex} pages`, `${sizePages} pages`)
  const m = r.u32('V5 mapping build count')
  if (m > V5_LIMITS.maxBuilds) throw new LimitError(`V5 mapping build count: expected <= ${V5_LIMITS.maxBuilds}, found ${m}`)
  r.need(m * 16, `V5 mapping ${m} build ids`)
  const ids: BuildId[] = []
  for (let i = 0; i < m; i++) ids.push(r.uuid(`V5 mapping build id ${i}`))
  const n = r.u32('V5 mapping count')
  if (n > V5_LIMITS.maxMappings) throw new LimitError(`V5 mapping count: expected <= ${V5_LIMITS.maxMappings}, found ${n}`)
  if (n === 0) return size === 0 ? [] : [nilMapping(0, sizePages)]
  // Every mapping takes at least one byte in each of the four columns; e2b also bounds what it rebuilds.
  const fits = Math.min(Math.floor(r.remaining / 4), V5_LIMITS.maxMappingsInMemory)
  if (n > fits) r.fail('V5 mapping count', `<= ${fits} (4 bytes each left, at most ${V5_LIMITS.maxMappingsInMemory})`, n)
  const offsets = readColumn(r, n, 'offset delta', (v, prev) => prev + v)
  const lengths = readColumn(r, n, 'length', (v) => v)
  const storage = readColumn(r, n, 'storage delta', (v, prev) => prev + unzigzag(v))
  const index = readColumn(r, n, 'build index', (v) => v, m - 1)
  const total = rebuiltCount(offsets, lengths, sizePages)
  if (total > maxMappings) throw new LimitError(`V5 mappings with their gaps: expected <= ${maxMappings}, found ${total}`)
  return rebuild(r, offsets, lengths, storage, index.map((i) => ids[i]), sizePages)
}

/** Mappings plus the nil gaps between them and after the last (as e2b sizes its columns). */
function rebuiltCount(offsets: number[], lengths: number[], sizePages: number): number {
  let total = offsets.length
  let end = 0
  for (let i = 0; i < offsets.length; i++) {
    if (offsets[i] > end) total++
    end = offsets[i] + lengths[i]
  }
  return end < sizePages ? total + 1 : total
}

/** One column of `n` varints; `next` turns a value and the previous result into the page number kept. */
function readColumn(r: ByteReader, n: number, what: string, next: (v: number, prev: number) => number, max: number = V5_LIMITS.maxBlockIndex): number[] {
  const out: number[] = new Array(n)
  let prev = 0
  for (let i = 0; i < n; i++) {
    const at = r.offset
    const v = next(readUvarint(r, `V5 ${what} ${i}`), prev)
    if (v < 0 || v > max) r.fail(`V5 ${what} ${i}`, `a result in [0, ${max}]`, v, at)
    out[i] = prev = v
  }
  return out
}

function rebuild(r: ByteReader, offsets: number[], lengths: number[], storage: number[], builds: BuildId[], sizePages: number): Mapping[] {
  const out: Mapping[] = []
  let current = 0
  for (let i = 0; i < offsets.length; i++) {
    const off = offsets[i]
    if (lengths[i] === 0) r.fail(`V5 mapping ${i} length`, 'at least one page', 0)
    if (off < current) r.fail(`V5 mapping ${i} offset`, `page >= ${current} (sorted, no overlap)`, off)
    if (off > current) out.push(nilMapping(current, off - current))
    const end = off + lengths[i]
    if (end > sizePages) r.fail(`V5 mapping ${i} end`, `page <= ${sizePages} (the size in pages)`, end)
    out.push(Object.freeze({ offset: off * PAGE, length: lengths[i] * PAGE, buildId: builds[i], buildStorageOffset: storage[i] * PAGE }))
    current = end
  }
  if (current < sizePages) out.push(nilMapping(current, sizePages - current))
  return out
}

function nilMapping(page: number, pages: number): Mapping {
  return Object.freeze({ offset: page * PAGE, length: pages * PAGE, buildId: NIL_BUILD_ID, buildStorageOffset: 0 })
}

function uvarint(w: ByteWriter, v: number): void {
  let x = v
  while (x >= 0x80) {
    w.u8((x % 0x80) | 0x80)
    x = Math.floor(x / 0x80)
  }
  w.u8(x)
}

/** LEB128 as Go's binary.ReadUvarint; values above 2^53 cannot be a page number here and are refused. */
function readUvarint(r: ByteReader, field: string): number {
  const at = r.offset
  let v = 0
  let scale = 1
  for (let i = 0; i < MAX_VARINT_BYTES; i++) {
    const b = r.u8(field)
    v += (b & 0x7f) * scale
    if (b < 0x80) {
      if (!Number.isSafeInteger(v)) r.fail(field, 'a varint <= 2^53-1', 'a larger one', at)
      return v
    }
    scale *= 0x80
  }
  return r.fail(field, `a varint of at most ${MAX_VARINT_BYTES} bytes`, 'a longer one', at)
}

function zigzag(v: number): number {
  return v >= 0 ? 2 * v : -2 * v - 1
}

function unzigzag(u: number): number {
  return u % 2 === 0 ? u / 2 : -(u + 1) / 2
}
