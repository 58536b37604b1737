/**
 * Headers byte-exactly as e2b-dev/infra writes and reads them (docs/FORMAT.md has every byte):
 *   metadata (64): version u64 · blockSize u64 · size u64 · generation u64 · buildId [16] · baseBuildId [16]
 *   versions 1, 2, 3 (the V3 layout): mappings to end of input, 40 bytes each:
 *       offset u64 · length u64 · buildId [16] · bso u64
 *   versions 4 and 5: flags u8 (bit 0 incomplete) · u32 body length · body as ONE LZ4 frame:
 *       u32 numBuilds · per build (sorted by raw id): id [16] · fileSize i64 · sha256 [32] ·
 *       codec u32 · n u32 · n × {startU i64 · startC i64 · sizeU i32 · sizeC i32} ·
 *       V4: u32 numMappings · mappings (40 bytes each, as above); V5: the columnar section of header-v5.ts
 *       [· raw-build digest trailer, raw-digests.ts: per-chunk SHA-256 of raw builds, ignored by e2b]
 *
 * As e2b: only the low 16 bits of the version field count; flag bits other than bit 0 are ignored; a
 * V3 or V4 header without mappings maps the whole file (rounded up to 4 KiB) to its own build.
 *
 * Decoding is safe on hostile input: every count is checked against the bytes that remain and every
 * declared length against HEADER_LIMITS before allocating; any failure is a FormatError or LimitError.
 * Decoded headers are frozen: readers share them, and a header changed under a reader would hand it
 * bytes of another layout.
 */
import { ByteReader, ByteWriter } from './bytes.ts'
import { CorruptFrameError, FormatError, LimitError } from '../errors.ts'
import { type ByteRange, FrameTable } from './frame-table.ts'
import { FRAME_BYTES, HEADER_LIMITS, MAPPING_BYTES, METADATA_BYTES, rangesByBuild, validateHeader } from './header-validate.ts'
import { lz4CompressFrameSync, lz4DecompressFrameSync } from './lz4.ts'
import { alignUp, readV5Mappings, v5MappingsBytes, writeV5Mappings } from './header-v5.ts'
import { DIGEST_ENTRY_BYTES, RAW_DIGESTS_MAGIC, RAW_DIGESTS_VERSION, RawDigests, SHA256_BYTES } from './raw-digests.ts'
import { type BuildId, CODEC_IDS, type CodecName, type Frame, type Mapping } from './types.ts'
import { compareBuildIds } from './uuid.ts'
import type { BuildInfo, Header, HeaderVersion } from './header-types.ts'

export { HEADER_LIMITS } from './header-validate.ts'
export type { BuildInfo, Header, HeaderVersion } from './header-types.ts'

/** The byte layout of a version: 3 (mappings only), 4 (builds + mapping records) or 5 (builds + columnar mappings). */
export function headerLayout(version: HeaderVersion): 3 | 4 | 5 {
  return version === 4 || version === 5 ? version : 3
}

const FLAG_INCOMPLETE = 0x01
const VERSION_MASK = 0xffff
/** Smallest encoded build entry: id + fileSize + sha256 + codec + n. */
const MIN_BUILD_BYTES = 16 + 8 + 32 + 4 + 4
const CODEC_BY_ID: readonly CodecName[] = ['none', 'zstd', 'lz4']

export function encodeHeader(h: Header): Uint8Array {
  validateHeader(h)
  const layout = headerLayout(h.version)
  const w = new ByteWriter(METADATA_BYTES + 5 + (layout === 3 ? h.mappings.length * MAPPING_BYTES : 0))
  w.u64(h.version).u64(h.blockSize).u64(h.size).u64(h.generation).uuid(h.buildId).uuid(h.baseBuildId)
  if (layout === 3) {
    writeMappings(w, h.mappings)
    return w.finish()
  }
  w.u8(h.incomplete ? FLAG_INCOMPLETE : 0)
  const body = encodeBody(h)
  return w.u32(body.byteLength).bytes(lz4CompressFrameSync(body)).finish()
}

/**
 * Builds sorted by raw id; each table trimmed to the frames the mappings touch. The body size is
 * computed and checked against the limit before anything is written: a header over the limit would
 * be stored and then refused by every reader.
 */
function encodeBody(h: Header): Uint8Array {
  const v5 = h.version === 5
  const used = rangesByBuild(h.mappings, h.size)
  const ids = [...h.builds.keys()].sort(compareBuildIds)
  const tables = ids.map((id) => {
    const ranges = used.get(id)
    const frames = h.builds.get(id)!.frames
    return ranges === undefined ? frames : frames.trim(ranges)
  })
  const digests = rawDigestsToWrite(h, ids, used)
  let size = 4 + (v5 ? v5MappingsBytes(h.mappings) : 4 + h.mappings.length * MAPPING_BYTES) + digestTrailerBytes(digests)
  for (const t of tables) size += MIN_BUILD_BYTES + t.frames.length * FRAME_BYTES
  if (size > HEADER_LIMITS.maxBodyBytes) {
    throw new LimitError(`V${h.version} header body: expected <= ${HEADER_LIMITS.maxBodyBytes} bytes, found ${size}`)
  }
  const w = new ByteWriter(size)
  w.u32(ids.length)
  ids.forEach((id, i) => {
    const info = h.builds.get(id)!
    const table = tables[i]
    w.uuid(id).i64(info.fileSize).bytes(info.sha256).u32(CODEC_IDS[table.codec]).u32(table.frames.length)
    for (const f of table.frames) w.i64(f.startU).i64(f.startC).i32(f.sizeU).i32(f.sizeC)
  })
  if (v5) writeV5Mappings(w, h.mappings)
  else {
    w.u32(h.mappings.length)
    writeMappings(w, h.mappings)
  }
  writeDigestTrailer(w, digests)
  return w.finish()
}

type DigestEntry = readonly [BuildId, RawDigests]

/** Raw builds' digests in id order, each trimmed to the chunks the mappings touch (like frame tables). */
function rawDigestsToWrite(h: Header, ids: readonly BuildId[], used: Map<BuildId, ByteRange[]>): DigestEntry[] {
  const out: DigestEntry[] = []
  for (const id of ids) {
    const d = h.builds.get(id)!.digests
    if (d === undefined) continue
    const ranges = used.get(id)
    out.push([id, ranges === undefined ? d : d.trim(ranges)])
  }
  return out
}

function digestTrailerBytes(entries: readonly DigestEntry[]): number {
  if (entries.length === 0) return 0
  let size = 12
  for (const [, d] of entries) size += 16 + 8 + d.count * DIGEST_ENTRY_BYTES
  return size
}

/** Nothing at all when no build has digests: such a header is byte for byte what it was before. */
function writeDigestTrailer(w: ByteWriter, entries: readonly DigestEntry[]): void {
  if (entries.length === 0) return
  w.u32(RAW_DIGESTS_MAGIC).u32(RAW_DIGESTS_VERSION).u32(entries.length)
  for (const [id, d] of entries) {
    w.uuid(id).u32(d.chunkSize).u32(d.count)
    for (let i = 0; i < d.count; i++) w.u32(d.indices[i]).bytes(d.digestOf(i))
  }
}

function writeMappings(w: ByteWriter, mappings: readonly Mapping[]): void {
  for (const m of mappings) w.u64(m.offset).u64(m.length).uuid(m.buildId).u64(m.buildStorageOffset)
}

export function decodeHeader(bytes: Uint8Array): Header {
  if (bytes.byteLength > HEADER_LIMITS.maxHeaderBytes) {
    throw new LimitError(`header: expected <= ${HEADER_LIMITS.maxHeaderBytes} bytes, found ${bytes.byteLength}`)
  }
  const r = new ByteReader(bytes, 'header')
  const meta = {
    version: readVersion(r),
    blockSize: r.u64('blockSize'),
    size: r.u64('size'),
    generation: r.u64('generation'),
    buildId: r.uuid('buildId'),
    baseBuildId: r.uuid('baseBuildId'),
  }
  let header: Header
  if (headerLayout(meta.version) === 3) {
    header = { ...meta, incomplete: false, builds: new Map(), mappings: withDefaultMapping(meta, readV3Mappings(r)) }
  } else {
    // Unknown flag bits are ignored, as e2b does: a later writer may define them.
    const flags = r.u8('flags')
    const body = readV4Body(r, meta.version === 5, meta.size)
    const mappings = meta.version === 5 ? body.mappings : withDefaultMapping(meta, body.mappings)
    header = { ...meta, incomplete: (flags & FLAG_INCOMPLETE) !== 0, builds: body.builds, mappings }
  }
  validateHeader(header, FormatError)
  Object.freeze(header.mappings)
  return Object.freeze(header)
}

/** e2b reads the version as `u64 & 0xFFFF`: the upper 48 bits are ignored (and written back as zero). */
function readVersion(r: ByteReader): HeaderVersion {
  r.need(8, 'version')
  const lo = r.u32('version')
  r.u32('version')
  const version = lo & VERSION_MASK
  if (version < 1 || version > 5) r.fail('version', '1 to 5 in the low 16 bits', version, 0)
  return version as HeaderVersion
}

/** e2b's NewHeader: a V3/V4 header without mappings maps the whole file, in 4 KiB pages, to itself. */
function withDefaultMapping(meta: { size: number; buildId: BuildId }, mappings: Mapping[]): Mapping[] {
  if (mappings.length > 0 || meta.size === 0) return mappings
  return [Object.freeze({ offset: 0, length: alignUp(meta.size), buildId: meta.buildId, buildStorageOffset: 0 })]
}

function readV3Mappings(r: ByteReader): Mapping[] {
  if (r.remaining > HEADER_LIMITS.maxBodyBytes) {
    throw new LimitError(`V3 mappings: expected <= ${HEADER_LIMITS.maxBodyBytes} bytes, found ${r.remaining}`)
  }
  if (r.remaining % MAPPING_BYTES !== 0) {
    r.fail('mappings', `a multiple of ${MAPPING_BYTES} bytes`, `${r.remaining} bytes (truncated mapping)`)
  }
  return readMappings(r, r.remaining / MAPPING_BYTES)
}

function readV4Body(r: ByteReader, v5: boolean, size: number): Pick<Header, 'builds' | 'mappings'> {
  const what = v5 ? 'V5' : 'V4'
  const length = r.u32('body length')
  // Checked before decompressing: the declared length is what the decoder may allocate.
  if (length > HEADER_LIMITS.maxBodyBytes) {
    throw new LimitError(`${what} header body: expected <= ${HEADER_LIMITS.maxBodyBytes} bytes, found ${length} declared`)
  }
  let body: Uint8Array
  try {
    body = lz4DecompressFrameSync(r.rest(), length)
  } catch (err) {
    if (!(err instanceof CorruptFrameError)) throw err
    throw new FormatError(`${what} header body (LZ4 frame at offset ${METADATA_BYTES + 5}): ${err.message}`, { cause: err })
  }
  const br = new ByteReader(body, `${what} header body`)
  const builds = readBuilds(br)
  let mappings: Mapping[]
  if (v5) mappings = readV5Mappings(br, size, Math.floor(HEADER_LIMITS.maxBodyBytes / MAPPING_BYTES))
  else {
    const count = br.u32('numMappings')
    br.need(count * MAPPING_BYTES, `${count} mappings`)
    mappings = readMappings(br, count)
  }
  if (br.remaining > 0) readDigestTrailer(br, builds)
  br.expectEnd()
  return { builds, mappings }
}

/** The raw-build digest trailer after the mappings; each list is attached to its build's info. */
function readDigestTrailer(br: ByteReader, builds: Map<BuildId, BuildInfo>): void {
  const magic = br.u32('digest trailer magic')
  if (magic !== RAW_DIGESTS_MAGIC) br.fail('digest trailer magic', `0x${RAW_DIGESTS_MAGIC.toString(16)} ("SSRD") or the end of the body`, `0x${magic.toString(16)}`, br.offset - 4)
  const version = br.u32('digest trailer version')
  if (version !== RAW_DIGESTS_VERSION) br.fail('digest trailer version', String(RAW_DIGESTS_VERSION), version, br.offset - 4)
  const count = br.u32('digest trailer build count')
  br.need(count * 24, `digest trailer ${count} builds`)
  let prev: BuildId | undefined
  for (let i = 0; i < count; i++) {
    const at = br.offset
    const id = br.uuid(`digest trailer build ${i} id`)
    if (prev !== undefined && compareBuildIds(prev, id) >= 0) br.fail(`digest trailer build ${i} id`, `an id sorted after ${prev}`, id, at)
    prev = id
    const info = builds.get(id)
    if (info === undefined) br.fail(`digest trailer build ${i} id`, 'a build listed in the builds section', id, at)
    const chunkSize = br.u32(`digest trailer build ${id} chunk size`)
    const n = br.u32(`digest trailer build ${id} chunk count`)
    if (n > HEADER_LIMITS.maxFramesPerTable) throw new LimitError(`digest trailer build ${id}: expected <= ${HEADER_LIMITS.maxFramesPerTable} chunks, found ${n}`)
    br.need(n * DIGEST_ENTRY_BYTES, `digest trailer build ${id} ${n} chunks`)
    const indices: number[] = new Array(n)
    const sha = new Uint8Array(n * SHA256_BYTES)
    for (let j = 0; j < n; j++) {
      indices[j] = br.u32('chunk index')
      sha.set(br.bytes(SHA256_BYTES, 'chunk sha256'), j * SHA256_BYTES)
    }
    builds.set(id, { ...info, digests: new RawDigests(chunkSize, indices, sha) })
  }
}

function readBuilds(br: ByteReader): Map<BuildId, BuildInfo> {
  const count = br.u32('numBuilds')
  br.need(count * MIN_BUILD_BYTES, `${count} builds`)
  const builds = new Map<BuildId, BuildInfo>()
  let prev: BuildId | undefined
  for (let i = 0; i < count; i++) {
    const at = br.offset
    const buildId = br.uuid(`build ${i} id`)
    if (prev !== undefined && compareBuildIds(prev, buildId) >= 0) br.fail(`build ${i} id`, `an id sorted after ${prev}`, buildId, at)
    prev = buildId
    const fileSize = br.i64(`build ${i} fileSize`, 0)
    const sha256 = br.bytes(32, `build ${i} sha256`)
    builds.set(buildId, { buildId, fileSize, sha256, frames: readFrameTable(br, `build ${i}`) })
  }
  return builds
}

function readFrameTable(br: ByteReader, where: string): FrameTable {
  const codecId = br.u32(`${where} codec`)
  const codec = CODEC_BY_ID[codecId]
  if (codec === undefined) br.fail(`${where} codec`, '0 (none), 1 (zstd) or 2 (lz4)', codecId, br.offset - 4)
  const n = br.u32(`${where} frame count`)
  if (n > HEADER_LIMITS.maxFramesPerTable) {
    throw new LimitError(`${where}: expected <= ${HEADER_LIMITS.maxFramesPerTable} frames, found ${n}`)
  }
  br.need(n * FRAME_BYTES, `${where} ${n} frames`)
  const frames: Frame[] = new Array(n)
  for (let i = 0; i < n; i++) {
    const startU = br.i64('frame startU', 0)
    const startC = br.i64('frame startC', 0)
    frames[i] = { startU, startC, sizeU: br.i32('frame sizeU', 1), sizeC: br.i32('frame sizeC', 1) }
  }
  return new FrameTable(codec, frames)
}

function readMappings(r: ByteReader, count: number): Mapping[] {
  const out: Mapping[] = new Array(count)
  for (let i = 0; i < count; i++) {
    out[i] = Object.freeze({
      offset: r.u64('mapping offset'),
      length: r.u64('mapping length'),
      buildId: r.uuid('mapping buildId'),
      buildStorageOffset: r.u64('mapping buildStorageOffset'),
    })
  }
  return out
}
