/**
 * The command line's failure contract: every failure is one line `snapswarm: ERR_X: message` on
 * stderr, and its exit status comes from ONE table keyed by the error's code (EXIT_STATUS). Errors
 * that reach the CLI without a code (a raw system error, a library's error) are given one here,
 * with the path or address they concern, before they are printed.
 */
import { type ErrorCode, SnapswarmError } from '../errors.ts'

export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  notFound: 3,
  integrity: 4,
  remote: 5,
  local: 6,
} as const

/** Rows of the documented table (README "Exit codes", `snapswarm --help`): status, meaning, codes. */
export const EXIT_TABLE: readonly { status: number; meaning: string; codes: readonly ErrorCode[] }[] = [
  { status: EXIT.ok, meaning: 'success (also: the reader of stdout closed it early)', codes: [] },
  { status: EXIT.internal, meaning: 'internal error (a bug: please report it)', codes: ['ERR_INTERNAL'] },
  { status: EXIT.usage, meaning: 'usage: bad flag, argument, storage URL or config', codes: ['ERR_USAGE', 'ERR_INVALID_ARGUMENT', 'ERR_CONFIG', 'ERR_ADMISSION_CONFIG'] },
  {
    status: EXIT.notFound,
    meaning: 'not found: build, file kind, object, bucket, storage directory or input file',
    codes: ['ERR_NOT_FOUND', 'ERR_BUCKET_NOT_FOUND', 'ERR_FILE_NOT_FOUND', 'ERR_BUILD_UNAVAILABLE'],
  },
  {
    status: EXIT.integrity,
    meaning: 'integrity: corrupt or malformed data, verification failed, input changed',
    codes: ['ERR_FORMAT', 'ERR_CORRUPT_FRAME', 'ERR_VERIFY_FAILED', 'ERR_UNVERIFIABLE', 'ERR_LIMIT', 'ERR_SOURCE_CHANGED', 'ERR_SWITCHOVER', 'ERR_RANGE'],
  },
  {
    status: EXIT.remote,
    meaning: 'remote: a node or storage refused or could not be reached',
    codes: [
      'ERR_UNREACHABLE', 'ERR_REMOTE', 'ERR_UNAUTHORIZED', 'ERR_FORBIDDEN', 'ERR_BUILD_EXISTS', 'ERR_OBJECT_EXISTS', 'ERR_STORAGE',
      'ERR_UPLOAD_FAILED', 'ERR_FRAME_UNAVAILABLE', 'ERR_BUSY', 'ERR_PEER_PROTOCOL', 'ERR_PEER_STALL', 'ERR_PEER_STREAM',
    ],
  },
  {
    status: EXIT.local,
    meaning: 'local system: address in use, path exists or is a directory, permission, disk full, Node too old',
    codes: [
      'ERR_ADDR_IN_USE', 'ERR_ADDR_NOT_AVAILABLE', 'ERR_FILE_EXISTS', 'ERR_IS_DIRECTORY', 'ERR_NOT_A_DIRECTORY', 'ERR_NOT_REGULAR_FILE', 'ERR_FILE_UNREADABLE',
      'ERR_PERMISSION', 'ERR_NO_SPACE', 'ERR_NODE_VERSION', 'ERR_PAUSE_RECORD',
    ],
  },
  { status: 130, meaning: 'interrupted by SIGINT (143: SIGTERM); temporary files removed', codes: ['ERR_INTERRUPTED'] },
]

const EXIT_STATUS = new Map<string, number>(EXIT_TABLE.flatMap((row) => row.codes.map((code) => [code, row.status] as const)))

/** The exit status of an error code; a code missing from the table is an internal error. */
export function exitStatusFor(code: string): number {
  return EXIT_STATUS.get(code) ?? EXIT.internal
}

/** A failure of the command line itself: a flag, an argument, a combination of them. */
export class UsageError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_USAGE', message)
  }
}

/** Stopped by a signal; `signal` decides the status (128 + its number). */
export class InterruptedError extends SnapswarmError {
  readonly signal: NodeJS.Signals
  constructor(signal: NodeJS.Signals) {
    super('ERR_INTERRUPTED', `stopped by ${signal}`)
    this.signal = signal
  }
}

/** The process that reads our stdout closed it (`… | head -c 16`): not a failure of this command. */
export class StdoutClosedError extends SnapswarmError {
  constructor() {
    super('ERR_STDOUT_CLOSED', 'the reader of stdout closed it')
  }
}

/** System error codes (errno names) → our codes, with how the path or address is described. */
const ERRNO: Record<string, { code: ErrorCode; says: string }> = {
  ENOENT: { code: 'ERR_FILE_NOT_FOUND', says: 'no such file or directory' },
  EISDIR: { code: 'ERR_IS_DIRECTORY', says: 'expected a file, found a directory' },
  ENOTDIR: { code: 'ERR_NOT_A_DIRECTORY', says: 'a component of the path is not a directory' },
  EEXIST: { code: 'ERR_FILE_EXISTS', says: 'expected no file there, found one' },
  EACCES: { code: 'ERR_PERMISSION', says: 'permission denied' },
  EPERM: { code: 'ERR_PERMISSION', says: 'operation not permitted' },
  EROFS: { code: 'ERR_PERMISSION', says: 'read-only file system' },
  ENOSPC: { code: 'ERR_NO_SPACE', says: 'no space left on device' },
  EDQUOT: { code: 'ERR_NO_SPACE', says: 'disk quota exceeded' },
  EADDRINUSE: { code: 'ERR_ADDR_IN_USE', says: 'address already in use' },
  EADDRNOTAVAIL: { code: 'ERR_ADDR_NOT_AVAILABLE', says: 'address not available on this host' },
  ECONNREFUSED: { code: 'ERR_UNREACHABLE', says: 'connection refused' },
}

type Errno = { code?: unknown; path?: unknown; dest?: unknown; address?: unknown; port?: unknown; message?: unknown; cause?: unknown }

/** The first error in `err`'s cause chain (and AggregateError members) that carries an errno code we map. */
function findErrno(err: unknown, depth = 0): Errno | undefined {
  if (!err || typeof err !== 'object' || depth > 5) return undefined
  const e = err as Errno & { errors?: unknown[] }
  if (typeof e.code === 'string' && e.code in ERRNO) return e
  for (const inner of [e.cause, ...(Array.isArray(e.errors) ? e.errors : [])]) {
    const found = findErrno(inner, depth + 1)
    if (found) return found
  }
  return undefined
}

/** Libraries that fold a system error into their own message (libp2p's listen failure does). */
const ERRNO_IN_TEXT = /\b(E[A-Z]+): [^\n]*?(?:address already in use|address not available) (\S+)/

/** Any error → a SnapswarmError whose code is in the exit table (or ERR_INTERNAL). */
export function toCliError(err: unknown): SnapswarmError {
  if (err instanceof SnapswarmError) return err
  const sys = findErrno(err)
  if (sys) {
    const row = ERRNO[sys.code as string]
    const where = sys.address !== undefined ? `${sys.address}${sys.port !== undefined ? `:${sys.port}` : ''}` : sys.path
    const dest = sys.dest !== undefined ? ` → ${sys.dest}` : ''
    return new SnapswarmError(row.code, where !== undefined ? `${where}${dest}: ${row.says}` : `${row.says} (${String(sys.message ?? sys.code)})`, { cause: err })
  }
  const text = err instanceof Error ? err.message : String(err)
  const inText = ERRNO_IN_TEXT.exec(text)
  if (inText && inText[1] in ERRNO) return new SnapswarmError(ERRNO[inText[1]].code, `${inText[2]}: ${ERRNO[inText[1]].says}`, { cause: err })
  const firstLine = text.split('\n').find((l) => l.trim() !== '') ?? 'unknown error'
  return new SnapswarmError('ERR_INTERNAL', firstLine.trim(), { cause: err })
}

/** The one line printed for a failure: no stack, no second line (set SNAPSWARM_DEBUG=1 for the stack). */
export function errorLine(err: SnapswarmError): string {
  const message = err.message.replace(/\s*\n\s*/g, ' ').trim()
  return `snapswarm: ${err.code}: ${message}\n`
}

/** The exit status table as `snapswarm --help` shows it. */
export function exitTableHelp(): string {
  const rows = EXIT_TABLE.map((r) => `  ${String(r.status).padStart(3)}  ${r.meaning}${r.codes.length ? `\n       ${r.codes.join(' ')}` : ''}`)
  return `Exit status (from the error's code; every failure is one line "snapswarm: ERR_X: message" on stderr):\n${rows.join('\n')}\n`
}
