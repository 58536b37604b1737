/**
 * Mapping resolution and layering. A header maps every virtual byte to (the build that holds it, the
 * offset in that build's data file); the nil build, and any unmapped hole (a header read may leave
 * gaps; the ones derived here never do), read as zeros.
 *
 * Layering follows e2b's ToDiffHeader: generation + 1, baseBuildId inherited (NextGeneration), the
 * parent's mappings overlaid by the child's dirty and empty ranges, and the BuildInfo of every build
 * still referenced carried over, trimmed. The parent is never mutated.
 */
import { InvalidArgumentError } from '../errors.ts'
import type { ByteRange } from './frame-table.ts'
import { FrameTable } from './frame-table.ts'
import type { BuildInfo, Header, HeaderVersion } from './header.ts'
import { checkE2bAlignment, validateHeader } from './header-validate.ts'
import { alignUp, PAGE } from './header-v5.ts'
import { describeLayer } from './layer-info.ts'
import { carryBuilds, diffMappings, overlay } from './layer-merge.ts'
import { type BuildId, DEFAULT_BLOCK_SIZE, type FileKind, type Mapping, NIL_BUILD_ID } from './types.ts'
import { isBuildId } from './uuid.ts'

export interface Resolved {
  /** NIL_BUILD_ID means zeros. */
  readonly buildId: BuildId
  /** Offset in the build's data file (0 for zeros). */
  readonly storageOffset: number
  /** Bytes from `offset` to the end of this mapping (or hole): the longest read this answer serves. */
  readonly remaining: number
}

/** Virtual offset → build and storage offset. Binary search: O(log mappings). */
export function resolve(header: Header, offset: number): Resolved {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset >= header.size) {
    throw new InvalidArgumentError(`expected an offset in [0, ${header.size}), found ${offset}`)
  }
  const ms = header.mappings
  let lo = 0
  let hi = ms.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ms[mid].offset <= offset) lo = mid + 1
    else hi = mid
  }
  const m: Mapping | undefined = ms[lo - 1]
  if (m !== undefined && offset < m.offset + m.length) {
    const remaining = m.offset + m.length - offset
    if (m.buildId === NIL_BUILD_ID) return { buildId: NIL_BUILD_ID, storageOffset: 0, remaining }
    return { buildId: m.buildId, storageOffset: m.buildStorageOffset + (offset - m.offset), remaining }
  }
  const next = lo < ms.length ? ms[lo].offset : header.size
  return { buildId: NIL_BUILD_ID, storageOffset: 0, remaining: next - offset }
}

export interface SingleLayer {
  readonly buildId: BuildId
  /** Block size; defaults to the kind's. One of the two is required. */
  readonly blockSize?: number
  readonly kind?: FileKind
  /** Virtual size; defaults to (and must equal) info.fileSize plus the bytes of `empty`. */
  readonly size?: number
  readonly info: BuildInfo
  readonly incomplete?: boolean
  /** Ranges that read as zeros (all-zero blocks left out of the data file): nil mappings. */
  readonly empty?: readonly ByteRange[]
  /** The header version to write when a V4-layout header is needed: 4 (the default) or 5. */
  readonly headerVersion?: WriteVersion
}

/**
 * A build with no parent: one mapping covering the file, its length rounded up to 4 KiB as e2b's
 * NewHeader makes it; generation 1 and baseBuildId = buildId, as e2b's first stored layer (its
 * template build layers the first snapshot on an empty generation-0 header). V3 for a raw build
 * without chunk digests (no build info in V3), V4 for a compressed one or a raw one with digests, and
 * V4 whenever `incomplete` is set (only V4 has the flag); V5 instead of both when asked, as e2b's
 * V5 switch also sends raw builds down its V4 path.
 */
export function singleLayerHeader(layer: SingleLayer): Header {
  const { buildId, info } = layer
  checkChildId(buildId, info)
  const blockSize = layer.blockSize ?? (layer.kind === undefined ? undefined : DEFAULT_BLOCK_SIZE[layer.kind])
  if (blockSize === undefined) throw new InvalidArgumentError('expected blockSize or kind, found neither')
  const empty = layer.empty ?? []
  const holeBytes = empty.reduce((n, r) => n + (r.end - r.start), 0)
  const size = layer.size ?? info.fileSize + holeBytes
  if (size !== info.fileSize + holeBytes) throw new InvalidArgumentError(`expected size ${info.fileSize + holeBytes} (info.fileSize + zero ranges), found ${size}`)
  const incomplete = layer.incomplete ?? false
  // A raw build with chunk digests needs V4 (e2b's V4 for uncompressed data): V3 has nowhere to put them.
  const v4 = layer.headerVersion ?? 4
  const version = v4 === 4 && info.frames.codec === 'none' && !incomplete && info.digests === undefined ? 3 : v4
  const mappings = alignTail(empty.length > 0 ? holeMappings(buildId, size, empty) : size > 0 ? [{ offset: 0, length: size, buildId, buildStorageOffset: 0 }] : [], size)
  const builds = version === 3 ? new Map<BuildId, BuildInfo>() : carryBuilds(mappings, () => info)
  if (version >= 4 && info.fileSize === 0) {
    builds.set(buildId, Object.freeze({ buildId, fileSize: 0, sha256: info.sha256.slice(), frames: new FrameTable(info.frames.codec, []), digests: info.digests }))
  }
  return finish({ version, blockSize, size, generation: 1, buildId, baseBuildId: buildId, incomplete, builds, mappings })
}

export interface LayerChild {
  readonly buildId: BuildId
  /** Virtual byte ranges [start, end), sorted, block-aligned, whose data is packed in order in the child's data file. */
  readonly dirty: readonly ByteRange[]
  /** Virtual byte ranges that become zeros. */
  readonly empty?: readonly ByteRange[]
  /** The child's data file: fileSize = Σ dirty lengths; frames = its table (codec none for raw). */
  readonly info: BuildInfo
  readonly incomplete?: boolean
  /** The header version to write when a V4-layout header is needed: 4 (the default) or 5. */
  readonly headerVersion?: WriteVersion
}

/** The child's header: parent overlaid by the child's dirty and empty ranges. Linear in mappings. */
export function layerHeader(parent: Header, child: LayerChild): Header {
  checkChildId(child.buildId, child.info)
  if (child.buildId === parent.buildId || parent.builds.has(child.buildId) || parent.mappings.some((m) => m.buildId === child.buildId)) {
    throw new InvalidArgumentError(`expected a new build id, found ${child.buildId} already in the parent`)
  }
  const dirtyBytes = checkRanges(child.dirty, 'dirty', parent)
  checkRanges(child.empty ?? [], 'empty', parent)
  if (dirtyBytes !== child.info.fileSize) {
    throw new InvalidArgumentError(`expected info.fileSize = dirty bytes ${dirtyBytes}, found ${child.info.fileSize}`)
  }
  // Ranges (and the parent's last mapping) that end at an unaligned size end at its next 4 KiB page.
  const diff = diffMappings(child.buildId, toPages(child.dirty, parent.size), toPages(child.empty ?? [], parent.size))
  if (!Array.isArray(diff)) throw new InvalidArgumentError(`expected dirty and empty ranges disjoint, found both at ${diff.overlapAt}`)
  const mappings = overlay(alignTail(parent.mappings, parent.size), diff)
  const incomplete = child.incomplete ?? false
  const version = childVersion(parent, child, incomplete)
  const infos = (id: BuildId) => (id === child.buildId ? child.info : (parent.builds.get(id) ?? placeholder(parent, id)))
  return finish({
    version,
    blockSize: parent.blockSize,
    size: parent.size,
    generation: parent.generation + 1,
    buildId: child.buildId,
    // e2b NextGeneration keeps the base; a nil base (old headers) means the parent was the base.
    baseBuildId: parent.baseBuildId === NIL_BUILD_ID ? parent.buildId : parent.baseBuildId,
    incomplete,
    builds: version === 3 ? new Map() : carryBuilds(mappings, infos),
    mappings,
  })
}

/** A single layer with zero ranges: the rest of [0, size) is stored in order; `empty` must be sorted, disjoint, inside. */
function holeMappings(buildId: BuildId, size: number, empty: readonly ByteRange[]): Mapping[] {
  const stored: ByteRange[] = []
  let pos = 0
  for (const r of empty) {
    if (!(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end) && r.start >= pos && r.end > r.start && r.end <= size)) {
      throw new InvalidArgumentError(`zero range [${r.start}, ${r.end}): expected sorted, disjoint, inside the size ${size}`)
    }
    if (r.start > pos) stored.push({ start: pos, end: r.start })
    pos = r.end
  }
  if (pos < size) stored.push({ start: pos, end: size })
  return diffMappings(buildId, stored, empty) as Mapping[]
}

/** The header versions snapswarm writes when it needs build entries (config `format.headerVersion`). */
export type WriteVersion = 4 | 5

/**
 * V5 when asked; else the parent's own version (1, 2 or 3, as e2b's uncompressed path inherits it)
 * when nothing needs build entries: a raw child without digests of a V3-layout parent, not pending.
 */
function childVersion(parent: Header, child: LayerChild, incomplete: boolean): HeaderVersion {
  const v4 = child.headerVersion ?? 4
  if (v4 === 5) return 5
  const raw = child.info.frames.codec === 'none' && child.info.digests === undefined && !incomplete
  return parent.version <= 3 && raw ? parent.version : 4
}

/**
 * The empty entry e2b writes for an uncompressed ancestor its parent has no entry for (size 0 =
 * unknown, no checksum, codec none): its loader fills these in and its upload carries them on.
 */
function placeholder(parent: Header, id: BuildId): BuildInfo | undefined {
  if (describeLayer(parent, id).kind !== 'raw') return undefined
  return { buildId: id, fileSize: 0, sha256: new Uint8Array(32), frames: new FrameTable('none', []) }
}

/** A mapping that ends at an unaligned `size` ends at the next 4 KiB page instead (e2b's NewHeader). */
function alignTail(mappings: readonly Mapping[], size: number): Mapping[] {
  const last = mappings[mappings.length - 1]
  if (last === undefined || last.offset + last.length !== size || size % PAGE === 0) return mappings.slice()
  return [...mappings.slice(0, -1), Object.freeze({ ...last, length: alignUp(size) - last.offset })]
}

function toPages(ranges: readonly ByteRange[], size: number): ByteRange[] {
  return ranges.map((r) => (r.end === size ? { start: r.start, end: alignUp(size) } : r))
}

function checkChildId(buildId: BuildId, info: BuildInfo): void {
  if (!isBuildId(buildId) || buildId === NIL_BUILD_ID) {
    throw new InvalidArgumentError(`expected a canonical non-nil build id, found ${buildId}`)
  }
  if (info.buildId !== buildId) throw new InvalidArgumentError(`expected info for ${buildId}, found ${info.buildId}`)
}

/** Sorted, disjoint, non-empty, block-aligned (the last may end at an unaligned size). Returns Σ length. */
function checkRanges(ranges: readonly ByteRange[], what: string, parent: Header): number {
  let prevEnd = 0
  let total = 0
  for (const r of ranges) {
    const ok =
      Number.isSafeInteger(r.start) &&
      Number.isSafeInteger(r.end) &&
      r.start >= prevEnd &&
      r.end > r.start &&
      r.end <= parent.size &&
      r.start % parent.blockSize === 0 &&
      (r.end % parent.blockSize === 0 || r.end === parent.size)
    if (!ok) {
      throw new InvalidArgumentError(
        `${what} range [${r.start}, ${r.end}): expected sorted, disjoint, aligned to ${parent.blockSize}, inside ${parent.size}`,
      )
    }
    prevEnd = r.end
    total += r.end - r.start
  }
  return total
}

/**
 * Validate like the encoder would, so a header built here can always be stored and read back, and
 * check e2b's alignment: every header snapswarm writes is derived here.
 */
function finish(h: Header): Header {
  validateHeader(h)
  checkE2bAlignment(h)
  Object.freeze(h.mappings)
  return Object.freeze(h)
}
