/**
 * The mapping arithmetic behind layerHeader (e2b's CreateMapping + MergeMappings + NormalizeMappings),
 * rewritten to be linear: every step is a two-pointer walk over sorted, disjoint lists, and frame
 * tables are trimmed by binary search (quadratic frame scans on mapping splits).
 */
import type { ByteRange } from './frame-table.ts'
import { FrameTable } from './frame-table.ts'
import type { BuildInfo } from './header.ts'
import { rangesByBuild } from './header-validate.ts'
import { type BuildId, type Mapping, NIL_BUILD_ID } from './types.ts'

const end = (m: Mapping | ByteRange): number => ('start' in m ? m.end : m.offset + m.length)

/**
 * The child's own mappings: dirty ranges map to the child's data file, packed in order (storage
 * offsets accumulate), empty ranges map to the nil build (zeros). Both inputs sorted and disjoint;
 * the caller checked them. Returns a sorted, disjoint list, or the first overlap found.
 */
export function diffMappings(
  buildId: BuildId,
  dirty: readonly ByteRange[],
  empty: readonly ByteRange[],
): Mapping[] | { overlapAt: number } {
  const out: Mapping[] = []
  let storage = 0
  let i = 0
  let j = 0
  while (i < dirty.length || j < empty.length) {
    const takeDirty = j >= empty.length || (i < dirty.length && dirty[i].start < empty[j].start)
    const r = takeDirty ? dirty[i++] : empty[j++]
    const prev = out[out.length - 1]
    if (prev !== undefined && r.start < end(prev)) return { overlapAt: r.start }
    const length = r.end - r.start
    out.push({ offset: r.start, length, buildId: takeDirty ? buildId : NIL_BUILD_ID, buildStorageOffset: takeDirty ? storage : 0 })
    if (takeDirty) storage += length
  }
  return out
}

/**
 * Overlays `diff` on `base` (both sorted and disjoint): base bytes under a diff mapping are dropped,
 * base mappings that straddle a diff boundary are split. Each (base, diff) overlap is visited once,
 * and there are at most |base| + |diff| of them.
 */
export function overlay(base: readonly Mapping[], diff: readonly Mapping[]): Mapping[] {
  const pieces: Mapping[] = []
  let k = 0
  for (const p of base) {
    const pEnd = end(p)
    while (k < diff.length && end(diff[k]) <= p.offset) k++
    let s = p.offset
    for (let j = k; j < diff.length && diff[j].offset < pEnd; j++) {
      if (diff[j].offset > s) pieces.push(slice(p, s, diff[j].offset))
      s = Math.max(s, end(diff[j]))
    }
    if (s < pEnd) pieces.push(slice(p, s, pEnd))
  }
  return normalize(mergeSorted(pieces, diff))
}

/** The part [s, e) of `p`; a nil mapping's storage offset stays 0 (it has no storage; V5 does not even write it). */
function slice(p: Mapping, s: number, e: number): Mapping {
  if (s === p.offset && e === end(p)) return p
  const buildStorageOffset = p.buildId === NIL_BUILD_ID ? 0 : p.buildStorageOffset + (s - p.offset)
  return { offset: s, length: e - s, buildId: p.buildId, buildStorageOffset }
}

function mergeSorted(a: readonly Mapping[], b: readonly Mapping[]): Mapping[] {
  const out: Mapping[] = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i].offset < b[j].offset)) out.push(a[i++])
    else out.push(b[j++])
  }
  return out
}

/**
 * Joins neighbours that are one run: same build, adjacent virtually and in storage (the nil build has
 * no storage). e2b joins on build id alone, which would be wrong for non-contiguous storage.
 */
function normalize(ms: readonly Mapping[]): Mapping[] {
  const out: Mapping[] = []
  for (const m of ms) {
    const prev = out[out.length - 1]
    const joins =
      prev !== undefined &&
      prev.buildId === m.buildId &&
      end(prev) === m.offset &&
      (m.buildId === NIL_BUILD_ID || prev.buildStorageOffset + prev.length === m.buildStorageOffset)
    if (joins) out[out.length - 1] = { ...prev, length: prev.length + m.length }
    else out.push(m)
  }
  return out.map((m) => Object.freeze(m))
}

/**
 * BuildInfo for every build the mappings still use, each table trimmed to the ranges used. Builds
 * with no info stay absent: "unknown" must not turn into "known uncompressed". A raw
 * build's table is codec none with no frames, its only V4 form; its chunk digests, if
 * any, are trimmed like a table.
 */
export function carryBuilds(mappings: readonly Mapping[], infos: (id: BuildId) => BuildInfo | undefined): Map<BuildId, BuildInfo> {
  const builds = new Map<BuildId, BuildInfo>()
  for (const [id, ranges] of rangesByBuild(mappings)) {
    const info = infos(id)
    if (info === undefined) continue
    const frames = info.frames.codec === 'none' ? new FrameTable('none', []) : info.frames.trim(ranges)
    const digests = info.digests?.trim(ranges)
    builds.set(id, Object.freeze({ buildId: id, fileSize: info.fileSize, sha256: info.sha256.slice(), frames, ...(digests ? { digests } : {}) }))
  }
  return builds
}
