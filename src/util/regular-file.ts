/**
 * Opening a path that must be a regular file, safely: every place that reads a file named by a user
 * (pack, push, inspect, a pause) goes through here, so a FIFO, a device, a directory or a /proc file
 * is refused with a clear error instead of blocking a thread forever or being read without end.
 *
 * The checks, in order: a bounded path length; lstat (a directory, FIFO, socket or device is refused
 * before anything is opened); open with O_NONBLOCK (a FIFO swapped in after the lstat cannot block the
 * open); fstat of the open handle: still a regular file and the same device/inode the lstat saw
 * (nothing swapped between check and open); not on a kernel pseudo filesystem (/proc, /sys, ...),
 * whose "regular files" report a size that says nothing about what a read returns. Callers then read
 * from the returned handle only, never from the path again.
 */
import { constants, statfs } from 'node:fs'
import { type FileHandle, lstat, open, stat } from 'node:fs/promises'
import { dirname, resolve as resolvePath } from 'node:path'
import { promisify } from 'node:util'
import { LimitError, SnapswarmError } from '../errors.ts'
import { readExactly } from './file-io.ts'

/** Linux PATH_MAX: a longer path is refused before any system call. */
export const MAX_PATH_BYTES = 4096

/** A path that exists but is not a regular file (directory, FIFO, socket, device, pseudo-file). */
export class NotRegularFileError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_NOT_REGULAR_FILE', message)
  }
}

/** A path that does not exist or cannot be opened for reading. */
export class FileAccessError extends SnapswarmError {
  constructor(code: 'ERR_FILE_NOT_FOUND' | 'ERR_FILE_UNREADABLE', message: string, cause?: unknown) {
    super(code, message, { cause })
  }
}

/** What identifies one version of a file: a rename-over, a rewrite or a truncation all change it. */
export interface FileIdentity {
  readonly dev: string
  readonly ino: string
  readonly size: number
  /** Modification time in nanoseconds since the epoch, as a decimal string (exact). */
  readonly mtimeNs: string
}

export interface RegularFile {
  readonly handle: FileHandle
  readonly path: string
  readonly identity: FileIdentity
}

export interface OpenRegularOptions {
  /** Refuse a file larger than this (LimitError), before reading any of it. */
  readonly maxBytes?: number
  /** Refuse a symbolic link instead of following it (a caller that resolved the real path already). */
  readonly noFollow?: boolean
  /** How the file is named in errors, e.g. "files.memfile". */
  readonly what?: string
}

/** Magic numbers (statfs f_type) of kernel pseudo filesystems whose files are not data on a disk. */
const PSEUDO_FS = new Map<number, string>([
  [0x9fa0, 'proc'], [0x62656572, 'sysfs'], [0x64626720, 'debugfs'], [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'], [0x27e0eb, 'cgroup'], [0x63677270, 'cgroup2'], [0x1cd1, 'devpts'],
  [0x62656570, 'configfs'], [0xcafe4a11, 'bpf'], [0x6165676c, 'pstore'], [0xde5e81e4, 'efivarfs'],
  [0x65735543, 'fusectl'],
])
const statfsAsync = promisify(statfs)

export function checkPathLength(path: string, what = 'path'): void {
  if (typeof path !== 'string' || path.length === 0) throw new NotRegularFileError(`${what}: expected a file path, found ${JSON.stringify(path)}`)
  const bytes = Buffer.byteLength(path)
  if (bytes > MAX_PATH_BYTES) throw new LimitError(`${what}: expected a path of <= ${MAX_PATH_BYTES} bytes, found ${bytes}`)
  if (path.includes('\0')) throw new NotRegularFileError(`${what}: a path cannot contain a NUL byte`)
}

/** Open `path` for reading if, and only if, it is a regular file on a real filesystem. */
export async function openRegularFile(path: string, opts: OpenRegularOptions = {}): Promise<RegularFile> {
  const what = opts.what ?? shortPath(path)
  checkPathLength(path, what)
  const before = await (opts.noFollow ? lstat : stat)(path, { bigint: true }).catch((err) => {
    throw accessError(err, what, path)
  })
  if (!before.isFile()) throw new NotRegularFileError(`${what}: expected a regular file, found ${kindOf(before)} at ${path}`)
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (opts.noFollow ? constants.O_NOFOLLOW : 0)
  const handle = await open(path, flags).catch((err) => {
    throw accessError(err, what, path)
  })
  try {
    const st = await handle.stat({ bigint: true })
    if (!st.isFile() || st.dev !== before.dev || st.ino !== before.ino) {
      throw new NotRegularFileError(`${what}: ${path} changed while it was opened (expected the regular file with inode ${before.ino}, found ${kindOf(st)} with inode ${st.ino})`)
    }
    await refusePseudoFs(handle, path, what)
    const identity: FileIdentity = { dev: String(st.dev), ino: String(st.ino), size: Number(st.size), mtimeNs: String(st.mtimeNs) }
    if (opts.maxBytes !== undefined && identity.size > opts.maxBytes) {
      throw new LimitError(`${what}: expected a file of <= ${opts.maxBytes} bytes, found ${identity.size} bytes at ${path}`)
    }
    return { handle, path, identity }
  } catch (err) {
    await handle.close().catch(() => {})
    throw err
  }
}

/**
 * The kernel pseudo filesystem (proc, sysfs, ...) that `path`, or its nearest existing ancestor, is
 * on; undefined for a real one. Nothing can be created there, and a recursive mkdir under /proc
 * never returns (it retries the parent that exists and the child that cannot), so directories a
 * user names are checked with this first.
 */
export async function pseudoFsOf(path: string): Promise<string | undefined> {
  for (let p = resolvePath(path); ; p = dirname(p)) {
    const fs = await statfsAsync(p).catch(() => null)
    if (fs) return PSEUDO_FS.get(Number(fs.type))
    if (p === dirname(p)) return undefined
  }
}

/** The identity of an open handle now (to compare with one recorded earlier). */
export async function identityOf(handle: FileHandle): Promise<FileIdentity> {
  const st = await handle.stat({ bigint: true })
  return { dev: String(st.dev), ino: String(st.ino), size: Number(st.size), mtimeNs: String(st.mtimeNs) }
}

/** What differs between two identities, in words ("" when they are the same file version). */
export function identityDiff(expected: FileIdentity, found: FileIdentity): string {
  const diffs: string[] = []
  for (const k of ['dev', 'ino', 'size', 'mtimeNs'] as const) {
    if (String(expected[k]) !== String(found[k])) diffs.push(`${k} expected ${expected[k]}, found ${found[k]}`)
  }
  return diffs.join('; ')
}

/**
 * Read a whole regular file, refusing (before reading) one larger than `maxBytes`, and reading no
 * more than the size fstat reported even if the file grows meanwhile.
 */
export async function readRegularFile(path: string, maxBytes: number, what?: string): Promise<Buffer> {
  const f = await openRegularFile(path, { maxBytes, what })
  try {
    return await readHandleFully(f.handle, f.identity.size, what ?? shortPath(path))
  } finally {
    await f.handle.close()
  }
}

/** Exactly `size` bytes from the start of `handle`; a file that shrank is an error, not a short buffer. */
export async function readHandleFully(handle: FileHandle, size: number, what: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size)
  await readExactly(handle, buf, 0, (done) => new SnapswarmError('ERR_SOURCE_CHANGED', `${what}: expected ${size} bytes, the file ended at ${done}`))
  return buf
}

async function refusePseudoFs(handle: FileHandle, path: string, what: string): Promise<void> {
  // statfs of the handle itself through its /proc/self/fd link: the filesystem of what was opened,
  // not of whatever the path names now. Where /proc is not mounted, the path is the best there is.
  const fs = await statfsAsync(`/proc/self/fd/${handle.fd}`).catch(() => statfsAsync(path).catch(() => null))
  const name = fs ? PSEUDO_FS.get(Number(fs.type)) : undefined
  if (name) throw new NotRegularFileError(`${what}: expected a file on a disk filesystem, found a ${name} pseudo-file at ${path}`)
}

function kindOf(st: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSymbolicLink(): boolean; isFile(): boolean }): string {
  if (st.isFile()) return 'a regular file'
  if (st.isDirectory()) return 'a directory'
  if (st.isFIFO()) return 'a FIFO'
  if (st.isSocket()) return 'a socket'
  if (st.isCharacterDevice()) return 'a character device'
  if (st.isBlockDevice()) return 'a block device'
  if (st.isSymbolicLink()) return 'a symbolic link'
  return 'a special file'
}

function shortPath(path: string): string {
  return typeof path === 'string' && path.length > 256 ? `${path.slice(0, 64)}… (${path.length} characters)` : path
}

function accessError(err: unknown, what: string, path: string): Error {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT' || code === 'ENOTDIR') return new FileAccessError('ERR_FILE_NOT_FOUND', `${what}: no such file: ${path} (${code})`, err)
  if (code === 'ENAMETOOLONG') return new LimitError(`${what}: path too long: ${shortPath(path)}`)
  if (code === 'ELOOP') return new NotRegularFileError(`${what}: expected a regular file, found a symbolic link at ${path}`)
  return new FileAccessError('ERR_FILE_UNREADABLE', `${what}: cannot open ${path} for reading: ${(err as Error).message}`, err)
}
