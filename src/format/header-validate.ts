/**
 * The rules a header must satisfy, applied identically on decode and on encode so that no node ever
 * stores a header it cannot read (DESIGN §4, §9: a size limit enforced on read but not on write).
 * Linear in mappings + frames: a hostile header with millions of mappings over one huge table must
 * not turn validation into a quadratic scan.
 */
import { InvalidArgumentError, LimitError } from './errors.ts'
import { type ByteRange, FrameTable, MAX_FRAMES_PER_TABLE } from './frame-table.ts'
import type { Header } from './header.ts'
import { type BuildId, type Mapping, NIL_BUILD_ID } from './types.ts'
import { isBuildId } from './uuid.ts'
import { RawDigests } from './raw-digests.ts'

const MiB = 1024 * 1024

export const HEADER_LIMITS = Object.freeze({
  /** Uncompressed V4 body; also caps the V3 mapping section (DESIGN §4). */
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
  if (h.version !== 3 && h.version !== 4) fail(`expected version 3 or 4, found ${h.version}`)
  checkInt(h.blockSize, 1, 'blockSize', fail)
  checkInt(h.size, 0, 'size', fail)
  checkInt(h.generation, 0, 'generation', fail)
  if (!isBuildId(h.buildId) || !isBuildId(h.baseBuildId)) {
    fail(`expected canonical build ids, found ${h.buildId} and ${h.baseBuildId}`)
  }
  if (h.version === 3 && (h.incomplete || h.builds.size > 0)) {
    fail(`V3 carries no flags and no build info: expected incomplete false and no builds, found ${h.incomplete} and ${h.builds.size} builds`)
  }
  if (h.mappings.length * MAPPING_BYTES > HEADER_LIMITS.maxBodyBytes) {
    throw new LimitError(`header: expected <= ${HEADER_LIMITS.maxBodyBytes / MAPPING_BYTES} mappings, found ${h.mappings.length}`)
  }
  checkMappings(h.mappings, h.size, fail)
  checkBuilds(h, Err, fail)
  checkCoverage(h, fail)
}

/** Sorted, non-overlapping, non-empty, inside `size` (DESIGN §4). */
function checkMappings(mappings: readonly Mapping[], size: number, fail: Fail): void {
  let prevEnd = 0
  for (let i = 0; i < mappings.length; i++) {
    const m = mappings[i]
    const where = `mapping ${i} of ${mappings.length}`
    checkInt(m.offset, 0, `${where} offset`, fail)
    checkInt(m.length, 1, `${where} length`, fail)
    checkInt(m.buildStorageOffset, 0, `${where} buildStorageOffset`, fail)
    if (!isBuildId(m.buildId)) fail(`${where}: expected a canonical build id, found ${m.buildId}`)
    if (m.offset < prevEnd) fail(`${where}: expected offset >= ${prevEnd} (sorted, no overlap), found ${m.offset}`)
    const end = m.offset + m.length
    if (end > size) fail(`${where}: expected end <= size ${size}, found ${end}`)
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
    // A raw ancestor appears in V4 as codec 0 with n = 0; frames for it would be meaningless (DESIGN §4).
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

/** Every mapped byte of a compressed build is covered by a frame of its table (DESIGN §4), and of a raw build with digests by a digest. */
function checkCoverage(h: Header, fail: Fail): void {
  for (const [id, ranges] of rangesByBuild(h.mappings)) {
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

/** Storage ranges [bso, bso+length) each build's mappings use, in mapping order. NIL excluded. */
export function rangesByBuild(mappings: readonly Mapping[]): Map<BuildId, ByteRange[]> {
  const out = new Map<BuildId, ByteRange[]>()
  for (const m of mappings) {
    if (m.buildId === NIL_BUILD_ID) continue
    let list = out.get(m.buildId)
    if (list === undefined) {
      list = []
      out.set(m.buildId, list)
    }
    list.push({ start: m.buildStorageOffset, end: m.buildStorageOffset + m.length })
  }
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
