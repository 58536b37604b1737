/**
 * Mapping resolution and layering (DESIGN §1, §2, §7). A header maps every virtual byte to (the build
 * that holds it, the offset in that build's data file); the nil build, and any unmapped hole (DESIGN
 * §4 requires mappings sorted and inside `size`, not a full cover), read as zeros.
 *
 * Layering follows e2b's ToDiffHeader: generation + 1, baseBuildId inherited (NextGeneration), the
 * parent's mappings overlaid by the child's dirty and empty ranges, and the BuildInfo of every build
 * still referenced carried over, trimmed. The parent is never mutated (DESIGN §9).
 */
import { InvalidArgumentError } from './errors.ts'
import type { ByteRange } from './frame-table.ts'
import { FrameTable } from './frame-table.ts'
import type { BuildInfo, Header } from './header.ts'
import { validateHeader } from './header-validate.ts'
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
  /** Block size; defaults to the kind's (DESIGN §2). One of the two is required. */
  readonly blockSize?: number
  readonly kind?: FileKind
  /** Virtual size; defaults to (and must equal) info.fileSize. */
  readonly size?: number
  readonly info: BuildInfo
  readonly incomplete?: boolean
}

/**
 * A build with no parent: one mapping covering the file (e2b's NewTemplateMetadata: generation 0,
 * baseBuildId = buildId). V3 for a raw build without chunk digests (no build info in V3), V4 for a
 * compressed one or a raw one with digests, and V4 whenever `incomplete` is set (only V4 has the flag).
 */
export function singleLayerHeader(layer: SingleLayer): Header {
  const { buildId, info } = layer
  checkChildId(buildId, info)
  const blockSize = layer.blockSize ?? (layer.kind === undefined ? undefined : DEFAULT_BLOCK_SIZE[layer.kind])
  if (blockSize === undefined) throw new InvalidArgumentError('expected blockSize or kind, found neither')
  const size = layer.size ?? info.fileSize
  if (size !== info.fileSize) throw new InvalidArgumentError(`expected size ${info.fileSize} (info.fileSize), found ${size}`)
  const incomplete = layer.incomplete ?? false
  // A raw build with chunk digests needs V4 (e2b's V4 for uncompressed data): V3 has nowhere to put them.
  const version = info.frames.codec === 'none' && !incomplete && info.digests === undefined ? 3 : 4
  const mappings: Mapping[] = size > 0 ? [{ offset: 0, length: size, buildId, buildStorageOffset: 0 }] : []
  const builds = version === 3 ? new Map<BuildId, BuildInfo>() : carryBuilds(mappings, () => info)
  if (version === 4 && size === 0) {
    builds.set(buildId, Object.freeze({ buildId, fileSize: 0, sha256: info.sha256.slice(), frames: new FrameTable(info.frames.codec, []), digests: info.digests }))
  }
  return finish({ version, blockSize, size, generation: 0, buildId, baseBuildId: buildId, incomplete, builds, mappings })
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
  const diff = diffMappings(child.buildId, child.dirty, child.empty ?? [])
  if (!Array.isArray(diff)) throw new InvalidArgumentError(`expected dirty and empty ranges disjoint, found both at ${diff.overlapAt}`)
  const mappings = overlay(parent.mappings, diff)
  const incomplete = child.incomplete ?? false
  // V3 only when nothing needs V4: a raw child of a V3 parent, not pending.
  const version = parent.version === 4 || child.info.frames.codec !== 'none' || child.info.digests !== undefined || incomplete ? 4 : 3
  const infos = (id: BuildId) => (id === child.buildId ? child.info : parent.builds.get(id))
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

/** Validate like the encoder would, so a header built here can always be stored and read back. */
function finish(h: Header): Header {
  validateHeader(h)
  Object.freeze(h.mappings)
  return Object.freeze(h)
}
