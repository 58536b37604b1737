/**
 * Named errors with a stable `code`. Messages say what was expected and what was found. Callers
 * branch on `code`, never on message text. Every code is in ERROR_CODES: the HTTP API's status
 * table and the CLI's exit table are checked against it.
 */

/** Every code a SnapswarmError may carry, by where it comes from. */
export const ERROR_CODES = [
  // Data: bytes that do not parse, lengths over a limit, frames or files that fail verification.
  'ERR_FORMAT', 'ERR_LIMIT', 'ERR_CORRUPT_FRAME', 'ERR_VERIFY_FAILED', 'ERR_UNVERIFIABLE', 'ERR_SOURCE_CHANGED',
  // The caller: arguments, flags, configuration.
  'ERR_INVALID_ARGUMENT', 'ERR_USAGE', 'ERR_CONFIG', 'ERR_ADMISSION_CONFIG',
  // Builds and objects that are not there (yet), or already are.
  'ERR_NOT_FOUND', 'ERR_BUCKET_NOT_FOUND', 'ERR_BUILD_UNAVAILABLE', 'ERR_BUILD_EXISTS', 'ERR_OBJECT_EXISTS',
  // Object storage.
  'ERR_STORAGE', 'ERR_RANGE', 'ERR_UPLOAD_STATE',
  // The read path, pauses and the header switchover.
  'ERR_FRAME_UNAVAILABLE', 'ERR_CACHE_CLOSED', 'ERR_UPLOAD_FAILED', 'ERR_SWITCHOVER', 'ERR_PAUSE_RECORD', 'ERR_SHUTDOWN', 'ERR_BUSY',
  // Peers.
  'ERR_PEER_PROTOCOL', 'ERR_PEER_STALL', 'ERR_PEER_STREAM',
  // The HTTP API and its clients.
  'ERR_UNAUTHORIZED', 'ERR_FORBIDDEN', 'ERR_UNREACHABLE', 'ERR_REMOTE', 'ERR_CLIENT_GONE', 'ERR_SEND_TIMEOUT',
  // NBD.
  'ERR_NBD_PROTOCOL', 'ERR_NBD_COMMAND',
  // The local system: files, addresses, space, the runtime.
  'ERR_FILE_NOT_FOUND', 'ERR_FILE_UNREADABLE', 'ERR_FILE_EXISTS', 'ERR_IS_DIRECTORY', 'ERR_NOT_A_DIRECTORY', 'ERR_NOT_REGULAR_FILE',
  'ERR_PERMISSION', 'ERR_NO_SPACE', 'ERR_ADDR_IN_USE', 'ERR_ADDR_NOT_AVAILABLE', 'ERR_NODE_VERSION',
  // The command line's own outcomes, and an error nobody named.
  'ERR_INTERRUPTED', 'ERR_STDOUT_CLOSED', 'ERR_INTERNAL',
] as const

/** The one union of error codes; an error class's code is one of these. */
export type ErrorCode = (typeof ERROR_CODES)[number]

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES)

/** A string (from the wire, from JSON) that is one of our codes. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && KNOWN_CODES.has(value)
}

export class SnapswarmError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** Bytes that do not parse as the format they claim to be (headers, frame tables, wire messages). */
export class FormatError extends SnapswarmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_FORMAT', message, options)
  }
}

/** A length or count from the outside world above its limit; raised before anything is allocated. */
export class LimitError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_LIMIT', message)
  }
}

/** A frame whose codec checksum, size or digest does not match what the frame table promised. */
export class CorruptFrameError extends SnapswarmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CORRUPT_FRAME', message, options)
  }
}

/** A caller-supplied value that is out of range (offsets, sizes, config). */
export class InvalidArgumentError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_INVALID_ARGUMENT', message)
  }
}
