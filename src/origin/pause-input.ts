/**
 * The input of a pause, checked before the build id is reserved: the JSON body's shape, every named
 * path opened as a regular file (src/util/regular-file.ts), sizes within what the format and the
 * upload can carry, and the dirty ranges consistent with the diff files. A request that fails any of
 * these gets a 400 and leaves nothing behind; one that passes hands its open handles to the pause,
 * which frames from those handles, never from the paths again (a file swapped in after the check is
 * never read).
 */
import { realpath } from 'node:fs/promises'
import { InvalidArgumentError, LimitError } from '../errors.ts'
import { type BuildId, type FileKind, FILE_KINDS } from '../format/types.ts'
import { isBuildId } from '../format/uuid.ts'
import { MAX_BLOB_BYTES } from '../p2p/constants.ts'
import { checkPathLength, FileAccessError, openRegularFile, type RegularFile } from '../util/regular-file.ts'
import type { PauseRequest } from './local-builds.ts'

/** The names a pause request may carry files under. */
export const INPUT_NAMES = ['memfile', 'rootfs', 'snapfile', 'metadata'] as const
export type InputName = (typeof INPUT_NAMES)[number]

/** Dirty ranges per data file: far more than any real diff has, few enough to check at once. */
export const MAX_DIRTY_RANGES = 65_536

/** The opened, checked files of one pause; whoever holds it closes it once. */
export class PauseInputs {
  readonly files: Map<InputName, RegularFile>
  private closed = false

  constructor(files: Map<InputName, RegularFile>) {
    this.files = files
  }

  get(name: InputName): RegularFile {
    const f = this.files.get(name)
    if (!f) throw new InvalidArgumentError(`files.${name}: not part of this pause`)
    return f
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.allSettled([...this.files.values()].map((f) => f.handle.close()))
  }
}

export interface InputLimits {
  /** The largest data file this node can frame and upload (frame table and part count). */
  readonly maxDataBytes: (kind: FileKind) => number
  /** A reason to refuse a real path (the node's own data directory, its keys), or undefined. */
  readonly forbidden?: (realPath: string) => string | undefined
}

/** Validate the JSON body of `POST /v1/builds/{id}`: its shape only; files are checked by openPauseInputs. */
export function parsePauseRequest(body: unknown): PauseRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InvalidArgumentError('pause request: expected a JSON object')
  const b = body as Record<string, unknown>
  const allowed = new Set(['parent', 'useCase', 'files', 'dirty'])
  for (const k of Object.keys(b)) if (!allowed.has(k)) throw new InvalidArgumentError(`unknown field '${k}' in pause request`)
  const parent = b.parent ?? null
  if (parent !== null && !isBuildId(parent)) throw new InvalidArgumentError(`parent: expected a UUID or null, found ${JSON.stringify(parent)}`)
  const useCase = b.useCase ?? 'pause'
  if (useCase !== 'pause' && useCase !== 'build') throw new InvalidArgumentError(`useCase: expected pause|build, found ${JSON.stringify(useCase)}`)
  const files = objectField(b.files, 'files')
  for (const [k, v] of Object.entries(files)) {
    if (!(INPUT_NAMES as readonly string[]).includes(k)) throw new InvalidArgumentError(`files: unknown file '${k}'`)
    if (typeof v !== 'string' || !v.startsWith('/')) throw new InvalidArgumentError(`files.${k}: expected an absolute path, found ${JSON.stringify(v)?.slice(0, 200)}`)
    checkPathLength(v, `files.${k}`)
  }
  if (!files.memfile && !files.rootfs) throw new InvalidArgumentError('files: a build needs at least one of memfile, rootfs')
  const dirty = objectField(b.dirty, 'dirty')
  for (const [k, v] of Object.entries(dirty)) {
    if (k !== 'memfile' && k !== 'rootfs') throw new InvalidArgumentError(`dirty: unknown file '${k}'`)
    if (!files[k]) throw new InvalidArgumentError(`dirty.${k}: given without files.${k}`)
    checkRangesShape(v, k)
  }
  if (parent === null && Object.keys(dirty).length > 0) throw new InvalidArgumentError('dirty: needs a parent')
  if (parent !== null) {
    for (const k of FILE_KINDS) if (files[k] && !dirty[k]) throw new InvalidArgumentError(`dirty.${k}: required when a parent is given (the virtual ranges files.${k} holds)`)
  }
  return { parent: parent as BuildId | null, useCase, files: files as PauseRequest['files'], dirty: dirty as PauseRequest['dirty'] }
}

/**
 * Open every file of `req` as a regular file (real path, no symlink followed at open, nothing
 * special), check its size and the dirty ranges against it. Throws before anything is kept open.
 */
export async function openPauseInputs(req: PauseRequest, limits: InputLimits): Promise<PauseInputs> {
  const opened = new Map<InputName, RegularFile>()
  try {
    for (const name of INPUT_NAMES) {
      const path = req.files[name]
      if (path) opened.set(name, await openInput(name, path, limits))
    }
    for (const kind of FILE_KINDS) {
      const ranges = req.dirty[kind]
      if (ranges) checkRangesCover(ranges, opened.get(kind)!.identity.size, kind)
    }
    return new PauseInputs(opened)
  } catch (err) {
    await Promise.allSettled([...opened.values()].map((f) => f.handle.close()))
    throw err
  }
}

async function openInput(name: InputName, path: string, limits: InputLimits): Promise<RegularFile> {
  const what = `files.${name}`
  // The real path: the forbidden-path check and the open see the same file, and the open refuses a
  // symlink planted between the two. A path realpath cannot resolve gets the open's own error.
  const real = await realpath(path).catch(async (err) => {
    // Let the open name the problem (missing, unreadable, a loop) with its usual error.
    const f = await openRegularFile(path, { what })
    await f.handle.close()
    throw new FileAccessError('ERR_FILE_UNREADABLE', `${what}: ${path} cannot be resolved to a real path: ${(err as Error).message}`, err)
  })
  const reason = limits.forbidden?.(real)
  if (reason) throw new InvalidArgumentError(`${what}: ${path} ${reason}`)
  const maxBytes = name === 'snapfile' || name === 'metadata' ? MAX_BLOB_BYTES : limits.maxDataBytes(name)
  return openRegularFile(real, { noFollow: true, maxBytes, what })
}

function objectField(v: unknown, name: string): Record<string, unknown> {
  if (v === undefined || v === null) return {}
  if (typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError(`${name}: expected an object, found ${JSON.stringify(v)?.slice(0, 100)}`)
  return v as Record<string, unknown>
}

function checkRangesShape(v: unknown, kind: FileKind): asserts v is [number, number][] {
  if (!Array.isArray(v)) throw new InvalidArgumentError(`dirty.${kind}: expected [[start, end], ...] byte ranges`)
  if (v.length > MAX_DIRTY_RANGES) throw new LimitError(`dirty.${kind}: expected <= ${MAX_DIRTY_RANGES} ranges, found ${v.length}`)
  let prevEnd = 0
  for (const r of v) {
    if (!Array.isArray(r) || r.length !== 2 || !r.every((n) => Number.isSafeInteger(n) && n >= 0)) {
      throw new InvalidArgumentError(`dirty.${kind}: expected [[start, end], ...] byte ranges, found ${JSON.stringify(r)?.slice(0, 100)}`)
    }
    const [start, end] = r as [number, number]
    if (end <= start) throw new InvalidArgumentError(`dirty.${kind}: a range must have start < end, found [${start}, ${end}]`)
    if (start < prevEnd) throw new InvalidArgumentError(`dirty.${kind}: ranges must be sorted and not overlap, found [${start}, ${end}] after one ending at ${prevEnd}`)
    prevEnd = end
  }
}

/** The diff file holds exactly the bytes of its dirty ranges, in order. */
function checkRangesCover(ranges: [number, number][], fileSize: number, kind: FileKind): void {
  const total = ranges.reduce((s, [start, end]) => s + (end - start), 0)
  if (total !== fileSize) {
    throw new InvalidArgumentError(`dirty.${kind}: the ranges cover ${total} bytes but files.${kind} holds ${fileSize}`)
  }
}
