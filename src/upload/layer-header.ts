/**
 * The header of a new layer, derived in one place for every writer: the origin's pending header, the
 * final header a pause or a push stores. Without a parent it maps the file onto itself; with one it
 * is the parent's mappings with the diff's dirty ranges (and its holes) laid over them.
 */
import { InvalidArgumentError } from '../errors.ts'
import type { ByteRange } from '../format/frame-table.ts'
import type { BuildInfo, Header } from '../format/header.ts'
import { layerHeader, singleLayerHeader, type WriteVersion } from '../format/mapping.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import { splitDirty } from '../framing/holes.ts'

export interface NewLayer {
  readonly buildId: BuildId
  readonly blockSize: number
  readonly info: BuildInfo
  readonly parent: Header | null
  /** With a parent: the virtual ranges the input file holds, packed in order. */
  readonly dirty?: readonly ByteRange[]
  /** Input ranges left out as zeros: nil mappings (in a child, they shadow the parent). */
  readonly holes?: readonly ByteRange[]
  readonly incomplete?: boolean
  readonly headerVersion?: WriteVersion
}

/** The header of a new layer: single-layer without a parent, else derived from the parent's header. */
export function buildHeader(l: NewLayer): Header {
  const holes = l.holes ?? []
  const { buildId, info, incomplete, headerVersion } = l
  if (!l.parent) return singleLayerHeader({ buildId, blockSize: l.blockSize, info, incomplete, empty: holes, headerVersion })
  if (!l.dirty) throw new InvalidArgumentError('a layer with a parent needs its dirty ranges')
  const { dirty, empty } = splitDirty(l.dirty, holes)
  return layerHeader(l.parent, { buildId, dirty, empty, info, incomplete, headerVersion })
}

/**
 * The header of a framed data file: its dirty ranges (as the request gave them) are checked against
 * the parent and the source's size (stored bytes plus holes) first.
 */
export function headerForFramed(kind: FileKind, l: NewLayer): Header {
  const dirty = l.parent ? checkDirty(l.dirty, l.info.fileSize + holeBytes(l.holes ?? []), l.parent, kind) : undefined
  return buildHeader({ ...l, dirty })
}

export function checkDirty(ranges: readonly ByteRange[] | undefined, diffSize: number, parent: Header, kind: FileKind): readonly ByteRange[] {
  if (!ranges) throw new InvalidArgumentError(`--dirty is required for ${kind} when a parent is given`)
  let total = 0
  let prevEnd = 0
  for (const r of ranges) {
    if (!(r.start >= prevEnd && r.end > r.start && r.end <= parent.size)) {
      throw new InvalidArgumentError(`dirty ranges of ${kind} must be sorted, non-overlapping and inside the parent's size ${parent.size}; found ${r.start}-${r.end}`)
    }
    if (r.start % parent.blockSize !== 0 || (r.end % parent.blockSize !== 0 && r.end !== parent.size)) {
      throw new InvalidArgumentError(`dirty range ${r.start}-${r.end} of ${kind} is not aligned to the block size ${parent.blockSize}`)
    }
    total += r.end - r.start
    prevEnd = r.end
  }
  if (total !== diffSize) throw new InvalidArgumentError(`the dirty ranges of ${kind} cover ${total} bytes but the diff file holds ${diffSize}`)
  return ranges
}

/** Bytes the holes of a data file leave out. */
export function holeBytes(holes: readonly ByteRange[]): number {
  return holes.reduce((n, h) => n + (h.end - h.start), 0)
}

/** Parse `0-2097152,8388608-10485760` (the `--dirty` flag). */
export function parseRanges(text: string): ByteRange[] {
  return text.split(',').filter(Boolean).map((part) => {
    const m = /^(\d+)-(\d+)$/.exec(part.trim())
    if (!m) throw new InvalidArgumentError(`expected START-END byte ranges, found '${part}'`)
    return { start: Number(m[1]), end: Number(m[2]) }
  })
}
