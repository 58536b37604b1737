/**
 * The layout of the node's own frame store (frame-store.ts). An entry's name carries the
 * whole frame reference — `{codec}-{startC:016x}-{sizeC:x}-{startU:x}-{sizeU:x}[-{content}].frm` under
 * `{buildId}/{memfile|rootfs.ext4}/` — so a restarted node rebuilds its index from a directory listing
 * and can verify an entry (decoding needs the codec and the uncompressed size) without any other
 * record. `content` is the content key of the header the frame was read under (cache-key.ts): frames
 * of one build id read under headers that promise different contents never pass for each other. The
 * shared cache keeps its own names, which other nodes read.
 */
import { readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { type BuildId, type CodecName, FILE_KINDS, type FileKind, storageName } from '../../format/types.ts'
import { isBuildId } from '../../format/uuid.ts'
import type { FrameRef } from '../source.ts'

const NAME = /^(none|zstd|lz4)-([0-9a-f]{16})-([0-9a-f]{1,13})-([0-9a-f]{1,13})-([0-9a-f]{1,13})(?:-([0-9a-f]{32}))?\.frm$/

export function entryName(ref: FrameRef): string {
  const hex = (n: number) => n.toString(16)
  const content = ref.content === undefined ? '' : `-${ref.content}`
  return `${ref.codec}-${ref.startC.toString(16).padStart(16, '0')}-${hex(ref.sizeC)}-${hex(ref.startU)}-${hex(ref.sizeU)}${content}.frm`
}

/** The reference an entry name stands for; null for anything else (temp files, locks, strangers). */
export function parseEntryName(buildId: BuildId, kind: FileKind, name: string): FrameRef | null {
  const m = NAME.exec(name)
  if (!m) return null
  const [startC, sizeC, startU, sizeU] = [m[2], m[3], m[4], m[5]].map((h) => Number.parseInt(h, 16))
  if (![startC, sizeC, startU, sizeU].every(Number.isSafeInteger) || sizeC <= 0 || sizeU <= 0) return null
  const codec = m[1] as CodecName
  if (codec === 'none' && (startC !== startU || sizeC !== sizeU)) return null
  const ref: FrameRef = { buildId, kind, codec, startC, sizeC, startU, sizeU }
  if (m[6] !== undefined) ref.content = m[6]
  return ref
}

/** What a peer's GetFrames names: a frame of a file by codec and compressed range. */
export function frameKey(kind: FileKind, codec: CodecName, startC: number, sizeC: number): string {
  return `${kind}/${codec}/${startC}/${sizeC}`
}

/** The same frame of the same promised content (a ref without a content key matches only one without). */
export function sameRef(a: FrameRef, b: FrameRef): boolean {
  return (
    a.buildId === b.buildId &&
    a.kind === b.kind &&
    a.codec === b.codec &&
    a.startC === b.startC &&
    a.sizeC === b.sizeC &&
    a.startU === b.startU &&
    a.sizeU === b.sizeU &&
    a.content === b.content
  )
}

export function kindFromDir(name: string): FileKind | undefined {
  return FILE_KINDS.find((k) => storageName(k) === name)
}

/**
 * Every entry under `dir`, per build, oldest build first (by the time its directories last changed,
 * so eviction after a restart still goes least recently written first). Anything else in a file
 * directory is what a crashed writer left (temp files, locks: nothing but this node writes here) and
 * is removed.
 */
export async function scanEntries(dir: string): Promise<FrameRef[][]> {
  const found: { refs: FrameRef[]; mtime: number }[] = []
  for (const id of await readdir(dir).catch(() => [] as string[])) {
    if (!isBuildId(id)) continue
    const refs: FrameRef[] = []
    let mtime = 0
    // Junk (a file where a directory belongs, a directory where an entry belongs, unreadable parts)
    // never stops a node from starting: it is skipped or removed, and only well-named files count.
    for (const d of await readdir(join(dir, id), { withFileTypes: true }).catch(() => [])) {
      const kind = d.isDirectory() ? kindFromDir(d.name) : undefined
      if (!kind) continue
      const kindDir = join(dir, id, d.name)
      mtime = Math.max(mtime, await stat(kindDir).then((s) => s.mtimeMs, () => 0))
      for (const e of await readdir(kindDir, { withFileTypes: true }).catch(() => [])) {
        const ref = e.isFile() ? parseEntryName(id, kind, e.name) : null
        if (ref) refs.push(ref)
        else await rm(join(kindDir, e.name), { recursive: true, force: true }).catch(() => {})
      }
    }
    found.push({ refs, mtime })
  }
  return found.sort((a, b) => a.mtime - b.mtime).map((f) => f.refs)
}
