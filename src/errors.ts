/**
 * Named errors with a stable `code`. Messages say what was expected and what was found
 * (STYLE.md practice 6). Callers branch on `code`, never on message text.
 */
export class SnapswarmError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
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
