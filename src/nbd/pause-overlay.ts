/**
 * Pause from an overlay: `POST /v1/builds/{newId}` with `{"overlay": "<name>"}` (or
 * `files.{kind}: {"overlay": "<name>"}`) becomes an ordinary layered pause whose parent is the
 * attached build and whose diff is exactly the overlay's written blocks (widened to the parent's
 * block size, the rest of each block taken from the parent). The diff is written to a file under
 * the data dir and paused like any other: no full-file copy. The writer should be quiet while this
 * runs (a paused VM): the overlay is flushed, then its blocks are copied as they read at that time.
 */
import { mkdir, open, readdir, realpath, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidArgumentError, SnapswarmError } from '../errors.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import { checkOverlayName, type ExportRegistry, type NbdExport } from './exports.ts'

/** Bytes copied from the merged view into the diff file per step. */
const COPY_STEP = 4 * 1024 * 1024

export interface OverlayPause {
  /** The pause body with every overlay replaced by its diff file and dirty ranges. */
  readonly body: Record<string, unknown>
  /** Real paths of the diff files: the pause may read them although they are inside the data dir. */
  readonly trusted: ReadonlySet<string>
  /** Remove the diff files (the pause was refused). */
  readonly discard: () => Promise<void>
}

/** Whether a pause body names an overlay anywhere. */
export function namesOverlay(body: unknown): boolean {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return false
  const b = body as Record<string, unknown>
  if (b.overlay !== undefined) return true
  const files = b.files
  return files !== null && typeof files === 'object' && Object.values(files as object).some((v) => v !== null && typeof v === 'object')
}

/** Turn the overlays of a pause body into diff files under `diffDir`; the caller pauses with the result. */
export async function overlayPause(id: BuildId, body: Record<string, unknown>, exports: ExportRegistry, diffDir: string): Promise<OverlayPause> {
  const out: Record<string, unknown> = { ...body }
  const files: Record<string, unknown> = { ...((body.files as Record<string, unknown> | undefined) ?? {}) }
  const dirty: Record<string, unknown> = { ...((body.dirty as Record<string, unknown> | undefined) ?? {}) }
  const wanted = new Map<FileKind, NbdExport>()
  if (body.overlay !== undefined) {
    const exp = await attached(exports, body.overlay)
    wanted.set(exp.spec.kind, exp)
    delete out.overlay
  }
  for (const [k, v] of Object.entries(files)) {
    if (v === null || typeof v !== 'object') continue
    const o = v as Record<string, unknown>
    if (Object.keys(o).some((key) => key !== 'overlay')) throw new InvalidArgumentError(`files.${k}: expected a path or {"overlay": name}`)
    const exp = await attached(exports, o.overlay)
    if (exp.spec.kind !== k) throw new InvalidArgumentError(`files.${k}: overlay ${exp.spec.overlay} is over a ${exp.spec.kind}, not a ${k}`)
    wanted.set(k as FileKind, exp)
  }
  const written: string[] = []
  const trusted = new Set<string>()
  const discard = async () => {
    await Promise.allSettled(written.map((p) => rm(p, { force: true })))
  }
  try {
    await mkdir(diffDir, { recursive: true })
    for (const [kind, exp] of wanted) {
      const parent = exp.spec.buildId
      if (out.parent !== undefined && out.parent !== null && out.parent !== parent) {
        throw new InvalidArgumentError(`parent: expected ${parent} (the build overlay ${exp.spec.overlay} is attached to), found ${JSON.stringify(out.parent)}`)
      }
      if (dirty[kind] !== undefined) throw new InvalidArgumentError(`dirty.${kind}: given for a file taken from an overlay (its written blocks are the dirty ranges)`)
      out.parent = parent
      const path = join(diffDir, `${id}-${kind}`)
      written.push(path)
      dirty[kind] = await writeDiff(exp, path)
      files[kind] = path
      trusted.add(await realpath(path))
    }
  } catch (err) {
    await discard()
    throw err
  }
  out.files = files
  out.dirty = dirty
  return { body: out, trusted, discard }
}

async function attached(exports: ExportRegistry, name: unknown): Promise<NbdExport> {
  const overlay = checkOverlayName(name)
  const exp = await exports.byOverlay(overlay)
  if (!exp) throw new SnapswarmError('ERR_NOT_FOUND', `overlay ${overlay} is not attached on this node (start it as an NBD export first)`)
  return exp
}

/**
 * Flush the overlay, then write its written blocks, widened to the parent's block size, into `path`
 * in order; returns the dirty ranges `[start, end]` the file holds.
 */
async function writeDiff(exp: NbdExport, path: string): Promise<[number, number][]> {
  const overlay = exp.overlay!
  await overlay.flush()
  const block = exp.header.blockSize
  const ranges = widen(overlay.runs(), block, exp.size)
  const fh = await open(path, 'w')
  try {
    let pos = 0
    const buf = Buffer.allocUnsafe(Math.min(COPY_STEP, Math.max(1, ...ranges.map(([s, e]) => e - s))))
    for (const [start, end] of ranges) {
      for (let at = start; at < end; ) {
        const n = Math.min(buf.byteLength, end - at)
        const part = buf.subarray(0, n)
        await exp.read(part, at)
        await fh.write(part, 0, n, pos)
        pos += n
        at += n
      }
    }
    await fh.sync()
  } finally {
    await fh.close()
  }
  return ranges
}

/** Sorted runs → sorted, merged ranges aligned to `block` (the last one may end at `size`). */
export function widen(runs: readonly { start: number; end: number }[], block: number, size: number): [number, number][] {
  const out: [number, number][] = []
  for (const r of runs) {
    const start = Math.floor(r.start / block) * block
    const end = Math.min(Math.ceil(r.end / block) * block, size)
    const last = out[out.length - 1]
    if (last && start <= last[1]) last[1] = Math.max(last[1], end)
    else out.push([start, end])
  }
  return out
}

/** Remove diff files left by a previous run whose pause is over (`inUse` says which builds still need theirs). */
export async function removeStaleDiffs(diffDir: string, inUse: (id: BuildId) => boolean): Promise<void> {
  const names = await readdir(diffDir).catch(() => [] as string[])
  const stale = names.filter((n) => !inUse(n.replace(/-(memfile|rootfs)$/, '') as BuildId))
  await Promise.allSettled(stale.map((n) => rm(join(diffDir, n), { force: true })))
}

/** Remove the diff files of a build once its pause is over (uploaded or failed). */
export async function removeDiffs(diffDir: string, id: BuildId): Promise<void> {
  await Promise.allSettled((['memfile', 'rootfs'] as const).map((k) => rm(join(diffDir, `${id}-${k}`), { force: true })))
}
