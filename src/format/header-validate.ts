/**
 * The rules a header must satisfy, applied identically on decode and on encode so that no node ever
 * stores a header it cannot read (a limit enforced on read but not on write strands a build).
 * `checkE2bAlignment` adds what e2b's reader requires of every header snapswarm derives.
 * Linear in mappings + frames: a hostile header with millions of mappings over one huge table must
 * not turn validation into a quadratic scan.
 */
import { InvalidArgumentError, LimitError } from '../errors.ts'
import { type ByteRange, FrameTable, MAX_FRAMES_PER_TABLE } from './frame-table.ts'
import type { Header } from './header-types.ts'
import { type BuildId, type Mapping, NIL_BUILD_ID } from './types.ts'
import { isBuildId } from './uuid.ts'
import { RawDigests } from './raw-digests.ts'
import { alignUp, PAGE } from './header-v5.ts'

const MiB = 1024 * 1024

export const HEADER_LIMITS = Object.freeze({
  /** Uncompressed V4/V5 body; also caps the V3 mapping section (e2b's cap, 256 MiB). */
  maxBodyBytes: 256 * MiB,
  maxFramesPerTable: MAX_FRAMES_PER_TABLE,
  /** Whole serialized header: metadata + flags + length + an LZ4 frame of a max body, with margin. */
  maxHeaderBytes: 257 * MiB,
})

export const METADATA_BYTES = 64
export const MAPPING_BYTES = 40
export const FRAME_BYTES = 24

type ErrorClass = new (msg: string) => Error
type Fail = (msg: string) => never

/** Throws `Err` (FormatError on decode, InvalidArgumentError on encode) or LimitError. */
export function validateHeader(h: Header, Err: ErrorClass = InvalidArgumentError): void {
  const fail: Fail = (msg) => {
    throw new Err(`header: ${msg}`)
  }
  if (!Number.isInteger(h.version) || h.version < 1 || h.version > 5) fail(`expected version 1 to 5, found ${h.version}`)
  checkInt(h.blockSize, 1, 'blockSize', fail)
  checkInt(h.size, 0, 'size', fail)
  checkInt(h.generation, 0, 'generation', fail)
  if (!isBuildId(h.buildId) || !isBuildId(h.baseBuildId)) {
    fail(`expected canonical build ids, found ${h.buildId} and ${h.baseBuildId}`)
  }
  if (h.version <= 3 && (h.incomplete || h.builds.size > 0)) {
    fail(`version ${h.version} (V3 layout) carries no flags and no build info: expected incomplete false and no builds, found ${h.incomplete} and ${h.builds.size} builds`)
  }
  if (h.mappings.length * MAPPING_BYTES > HEADER_LIMITS.maxBodyBytes) {
    throw new LimitError(`header: expected <= ${HEADER_LIMITS.maxBodyBytes / MAPPING_BYTES} mappings, found ${h.mappings.length}`)
  }
  checkMappings(h.mappings, h.size, fail)
  if (h.version === 5) checkPages(h, fail)
  checkBuilds(h, Err, fail)
  checkCoverage(h, fail)
}

/**
 * What e2b's reader requires of a header: every mapping offset, length and storage offset a multiple
 * of 4 KiB (its compact mapping refuses anything else), so also a block size that is a multiple of
 * 4 KiB (dirty blocks become mappings). A file whose size is not a multiple of 4 KiB keeps its size;
 * its last mapping ends at the size rounded up to 4 KiB, as e2b's NewHeader makes it.
 */
export function checkE2bAlignment(h: Header, Err: ErrorClass = InvalidArgumentError): void {
  const fail: Fail = (msg) => {
    throw new Err(`header for e2b: ${msg}`)
  }
  if (h.blockSize % PAGE !== 0) fail(`blockSize: expected a multiple of ${PAGE}, found ${h.blockSize}`)
  checkPages(h, fail)
}

function checkPages(h: Header, fail: Fail): void {
  for (let i = 0; i < h.mappings.length; i++) {
    const m = h.mappings[i]
    if (m.offset % PAGE !== 0 || m.length % PAGE !== 0 || m.buildStorageOffset % PAGE !== 0) {
      fail(`mapping ${i} of ${h.mappings.length}: expected offset, length and storage offset multiples of ${PAGE}, found ${m.offset}, ${m.length}, ${m.buildStorageOffset}`)
    }
  }
}

/** Sorted, non-overlapping, non-empty, inside `size` rounded up to 4 KiB (e2b's last page). */
function checkMappings(mappings: readonly Mapping[], size: number, fail: Fail): void {
  let prevEnd = 0
  const limit = alignUp(size)
  for (let i = 0; i < mappings.length; i++) {
    const m = mappings[i]
    const where = `mapping ${i} of ${mappings.length}`
    checkInt(m.offset, 0, `${where} offset`, fail)
    checkInt(m.length, 1, `${where} length`, fail)
    checkInt(m.buildStorageOffset, 0, `${where} buildStorageOffset`, fail)
    if (!isBuildId(m.buildId)) fail(`${where}: expected a canonical build id, found ${m.buildId}`)
    if (m.offset < prevEnd) fail(`${where}: expected offset >= ${prevEnd} (sorted, no overlap), found ${m.offset}`)
    const end = m.offset + m.length
    if (end > limit) fail(`${where}: expected end <= ${limit} (size ${size} rounded up to a multiple of ${PAGE}), found ${end}`)
    if (!Number.isSafeInteger(m.buildStorageOffset + m.length)) fail(`${where}: storage range ends beyond 2^53`)
    prevEnd = end
  }
}

function checkBuilds(h: Header, Err: ErrorClass, fail: Fail): void {
  for (const [id, info] of h.builds) {
    const where = `build ${id}`
    if (info.buildId !== id || !isBuildId(id)) fail(`${where}: expected matching canonical id, found ${info.buildId}`)
    checkInt(info.fileSize, 0, `${where} fileSize`, fail)
    if (!(info.sha256 instanceof Uint8Array) || info.sha256.byteLength !== 32) {
      fail(`${where}: expected a 32-byte sha256, found ${info.sha256?.byteLength} bytes`)
    }
    if (!(info.frames instanceof FrameTable)) fail(`${where}: expected a FrameTable`)
    if (info.frames.frames.length > MAX_FRAMES_PER_TABLE) {
      throw new LimitError(`header: ${where}: expected <= ${MAX_FRAMES_PER_TABLE} frames, found ${info.frames.frames.length}`)
    }
    // A raw ancestor appears in V4 as codec 0 with n = 0; frames for it would be meaningless.
    if (info.frames.codec === 'none' && info.frames.frames.length > 0) {
      fail(`${where}: expected no frames for codec none, found ${info.frames.frames.length}`)
    }
    info.frames.validate(Err, `header: ${where} frame table`)
    if (info.digests !== undefined) {
      if (!(info.digests instanceof RawDigests)) fail(`${where}: expected RawDigests`)
      if (info.frames.codec !== 'none') fail(`${where}: expected chunk digests only for a raw build (codec none), found codec ${info.frames.codec}`)
      info.digests.validate(info.fileSize, Err, `header: ${where} chunk digests`)
    }
  }
}

/** Every mapped byte of a compressed build is covered by a frame of its table, and of a raw build with digests by a digest. */
function checkCoverage(h: Header, fail: Fail): void {
  for (const [id, ranges] of rangesByBuild(h.mappings, h.size)) {
    const info = h.builds.get(id)
    const table = info?.frames
    if (info?.digests !== undefined) {
      const gap = info.digests.firstUncovered(unionRanges(ranges))
      if (gap !== undefined) fail(`build ${id}: expected mapped byte ${gap} covered by a chunk digest, found none`)
      const end = ranges.reduce((e, r) => Math.max(e, r.end), 0)
      if (end > info.fileSize) fail(`build ${id}: expected mapped bytes inside its file size ${info.fileSize}, found one at ${end - 1}`)
    }
    if (table === undefined || table.codec === 'none') continue
    const gap = firstUncovered(table, unionRanges(ranges))
    if (gap !== undefined) fail(`build ${id}: expected mapped byte ${gap} covered by a ${table.codec} frame, found none`)
  }
}

/**
 * Storage ranges each build's mappings use, in mapping order, NIL excluded. With `size`, each range
 * stops where the virtual file does: the last mapping may run on to the next 4 KiB, but those bytes
 * are never read and the data file does not hold them.
 */
export function rangesByBuild(mappings: readonly Mapping[], size = Number.POSITIVE_INFINITY): Map<BuildId, ByteRange[]> {
  const out = new Map<BuildId, ByteRange[]>()
  for (const m of mappings) {
    if (m.buildId === NIL_BUILD_ID || m.offset >= size) continue
    let list = out.get(m.buildId)
    if (list === undefined) {
      list = []
      out.set(m.buildId, list)
    }
    list.push({ start: m.buildStorageOffset, end: m.buildStorageOffset + Math.min(m.length, size - m.offset) })
  }
  return out
}

/** Per build, the end of the furthest storage byte the header maps (inside the virtual size). */
export function mappedEnds(h: Header): Map<BuildId, number> {
  const out = new Map<BuildId, number>()
  for (const [id, ranges] of rangesByBuild(h.mappings, h.size)) out.set(id, ranges.reduce((e, r) => Math.max(e, r.end), 0))
  return out
}

/** Sorted, disjoint union of `ranges` (sorting skipped when they already are: the usual case). */
export function unionRanges(ranges: readonly ByteRange[]): ByteRange[] {
  let sorted = ranges
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i].start < ranges[i - 1].start) {
      sorted = ranges.slice().sort((a, b) => a.start - b.start)
      break
    }
  }
  const out: ByteRange[] = []
  for (const r of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && r.start <= last.end) {
      if (r.end > last.end) out[out.length - 1] = { start: last.start, end: r.end }
    } else out.push(r)
  }
  return out
}

/** One sweep over sorted disjoint ranges and the table's frames: O(ranges + frames). */
function firstUncovered(table: FrameTable, ranges: readonly ByteRange[]): number | undefined {
  const frames = table.frames
  let j = 0
  for (const r of ranges) {
    let pos = r.start
    while (pos < r.end) {
      while (j < frames.length && frames[j].startU + frames[j].sizeU <= pos) j++
      if (j >= frames.length || frames[j].startU > pos) return pos
      pos = frames[j].startU + frames[j].sizeU
    }
  }
  return undefined
}

function checkInt(v: number, min: number, field: string, fail: Fail): void {
  if (!Number.isSafeInteger(v) || v < min) fail(`${field}: expected an integer in [${min}, 2^53-1], found ${v}`)
}
