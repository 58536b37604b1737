/**
 * The object-storage interface every backend implements, its named errors,
 * and the object-name rules all backends share, so a name accepted by one is accepted by every other
 * and the shared backend suite behaves the same everywhere.
 *
 * Names are bucket-style (`{buildId}/memfile.zstd`, docs/FORMAT.md): `/`-separated, no empty, `.` or `..`
 * segments, no leading `/`. A segment ending in `.parts` is reserved for the temporaries of multipart
 * uploads (GCS keeps them as objects next to their target).
 */
import { InvalidArgumentError, SnapswarmError } from '../errors.ts'

export interface PutOptions {
  /** Custom object metadata, e.g. `{ 'uncompressed-size': '1234' }`. */
  metadata?: Record<string, string>
  signal?: AbortSignal
}

export interface GetOptions {
  /** Refuse objects larger than this (LimitError) instead of buffering them. */
  maxBytes?: number
  signal?: AbortSignal
}

export interface ObjectStat {
  size: number
  metadata: Record<string, string>
}

export interface CleanupOptions {
  /** Only uploads whose target name starts with this (relative to the store). */
  prefix?: string
  /** Only uploads whose temporaries are older than this; protects uploads still running elsewhere. */
  olderThanMs: number
}

/**
 * Writes are create-only: `put` and a multipart `complete` never replace a stored object, they fail
 * with ObjectExistsError and leave it as it was (GCS: `ifGenerationMatch=0`; filesystem: link(2),
 * which refuses an existing name). One build id names one content forever, so a second writer of a
 * name must lose instead of overwriting what readers may already have read. Deleting is allowed.
 */
export interface ObjectStore {
  readonly url: string
  // Every call that reaches the service takes an AbortSignal: an aborted signal rejects at once with
  // its reason, one that fires later stops the caller's wait (and the request, where the SDK can).
  /** Creates the object; ObjectExistsError if the name exists (nothing is changed then). */
  put(name: string, data: Uint8Array, opts?: PutOptions): Promise<void>
  startUpload(name: string, opts?: { metadata?: Record<string, string> }): MultipartUpload
  /** Exactly `length` bytes at `offset`; ObjectRangeError if the object is shorter. */
  getRange(name: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>
  get(name: string, opts?: GetOptions): Promise<Uint8Array>
  /** null when the object does not exist. */
  stat(name: string, signal?: AbortSignal): Promise<ObjectStat | null>
  exists(name: string, signal?: AbortSignal): Promise<boolean>
  /** Idempotent: deleting a missing object succeeds. */
  delete(name: string, signal?: AbortSignal): Promise<void>
  /** Complete objects whose name starts with `prefix`, sorted; upload temporaries are never listed. */
  list(prefix: string, signal?: AbortSignal): Promise<string[]>
  /**
   * Removes temporaries of uploads that a crashed process never completed nor aborted. Returns how many
   * temporaries (objects or staging directories) were removed. Optional member: not every backend has temporaries.
   */
  cleanupStaleUploads?(opts: CleanupOptions): Promise<number>
  /**
   * Whether the bucket itself exists. Optional: asked after a "not found", so that a missing bucket
   * is reported as one instead of as a missing object.
   */
  bucketExists?(): Promise<boolean>
  close(): Promise<void>
}

/** Parts may be uploaded concurrently and out of order; numbers are 1..MAX_PARTS and contiguous at complete. */
export interface MultipartUpload {
  uploadPart(partNumber: number, data: Uint8Array, signal?: AbortSignal): Promise<void>
  /**
   * The object appears atomically with its metadata; the parts are removed. If the name exists it fails
   * with ObjectExistsError and the upload stays open (abort it to remove the parts). An aborted signal rejects
   * at once, but an assembly already running on the server finishes (then abort() is a no-op).
   */
  complete(signal?: AbortSignal): Promise<void>
  /**
   * Waits for in-flight parts (and a running complete), then removes every part and temporary.
   * Idempotent, and a no-op after a successful complete: it never deletes a finished object.
   */
  abort(): Promise<void>
}

/** GCS / S3 style limit (≤ 10,000 parts). */
export const MAX_PARTS = 10_000
/** GCS object-name limit, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 1024

/** The object does not exist. */
export class NotFoundError extends SnapswarmError {
  readonly objectName: string
  constructor(objectName: string, options?: { cause?: unknown }) {
    super('ERR_NOT_FOUND', `object ${JSON.stringify(objectName)} not found`, options)
    this.objectName = objectName
  }
}

/** The bucket (a GCS/S3 bucket, or a `file:` store's directory) does not exist: nothing in it can be. */
export class BucketNotFoundError extends SnapswarmError {
  constructor(what: string, options?: { cause?: unknown }) {
    super('ERR_BUCKET_NOT_FOUND', `${what} does not exist`, options)
  }
}

/**
 * The storage service failed. `retryable` is true for failures that may pass on a retry (5xx, 408,
 * 429, dropped or refused connections, timeouts); the build upload's per-part retry keys on it.
 */
export class StorageError extends SnapswarmError {
  readonly retryable: boolean
  readonly status: number | undefined
  constructor(message: string, opts: { retryable: boolean; status?: number; cause?: unknown }) {
    super('ERR_STORAGE', message, { cause: opts.cause })
    this.retryable = opts.retryable
    this.status = opts.status
  }
}

/**
 * A create-only write found its name taken: the stored object is left as it was. Not retryable (a
 * retry finds the same object); a writer whose own earlier request may have landed compares contents.
 */
export class ObjectExistsError extends SnapswarmError {
  readonly objectName: string
  constructor(objectName: string, options?: { cause?: unknown }) {
    super('ERR_OBJECT_EXISTS', `object ${JSON.stringify(objectName)}: expected no object of that name, found one (writes never overwrite)`, options)
    this.objectName = objectName
  }
}

/** A ranged read reaching past the end of the object. */
export class ObjectRangeError extends SnapswarmError {
  constructor(objectName: string, offset: number, length: number, size?: number) {
    const found = size === undefined ? 'a shorter object' : `object size ${size}`
    super('ERR_RANGE', `range [${offset}, ${offset + length}) of ${JSON.stringify(objectName)}: found ${found}`)
  }
}

/** A multipart upload used out of order: part after abort/complete, complete after abort, gaps in parts. */
export class UploadStateError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_UPLOAD_STATE', message)
  }
}

/** Throws InvalidArgumentError unless `name` is a valid object name (rules in the file comment). */
export function checkName(name: string): void {
  const bad = (why: string) => new InvalidArgumentError(`object name ${JSON.stringify(name)}: ${why}`)
  if (typeof name !== 'string' || name.length === 0) throw bad('expected a non-empty string')
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw bad(`longer than ${MAX_NAME_BYTES} bytes`)
  if (name.startsWith('/')) throw bad('absolute names are not allowed')
  if (/[\0\\\r\n]/.test(name)) throw bad('contains NUL, backslash or a line break')
  for (const seg of name.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') throw bad(`segment ${JSON.stringify(seg)} is not allowed`)
    if (seg.endsWith('.parts')) throw bad('segments ending in ".parts" are reserved for upload temporaries')
  }
}

/** Throws InvalidArgumentError unless `[offset, offset + length)` is a well-formed byte range. */
export function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new InvalidArgumentError(`range: expected non-negative integers, found offset ${offset} length ${length}`)
  }
}

export function checkPartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PARTS) {
    throw new InvalidArgumentError(`part number: expected an integer in 1..${MAX_PARTS}, found ${partNumber}`)
  }
}
