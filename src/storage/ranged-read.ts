/**
 * `getRange` for the object stores whose server answers HTTP range requests (S3, GCS): both clip a
 * range that runs past the end, answer 416 for one that starts past it, and need no request at all for
 * an empty range, so the contract (exactly `length` bytes or an error) is enforced here once.
 */
import { LimitError } from '../errors.ts'
import { checkRange, NotFoundError, ObjectRangeError, type ObjectStat, StorageError } from './store.ts'

export interface RangedSource {
  /** Downloads `[start, end]` (inclusive), refusing more than `limit` bytes (LimitError). */
  read(range: { start: number; end: number }, limit: number, signal?: AbortSignal): Promise<Uint8Array>
  /** The object's size, null when it is missing. */
  stat(): Promise<ObjectStat | null>
  /** The request in messages, e.g. `s3 getRange s3://bucket/key`. */
  what: string
}

/** Exactly `length` bytes of object `name` from `offset`, or NotFoundError / ObjectRangeError. */
export async function readExactRange(src: RangedSource, name: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
  checkRange(offset, length)
  if (length === 0) return emptyRange(src, name, offset, signal)
  let bytes: Uint8Array
  try {
    bytes = await src.read({ start: offset, end: offset + length - 1 }, length, signal)
  } catch (err) {
    if (err instanceof StorageError && err.status === 416) throw new ObjectRangeError(name, offset, length)
    if (err instanceof LimitError) throw new StorageError(`${src.what}: server ignored the Range header`, { retryable: false })
    throw err
  }
  // The server clips a range that runs past the end; the contract wants exactly `length` bytes.
  if (bytes.byteLength !== length) throw new ObjectRangeError(name, offset, length, offset + bytes.byteLength)
  return bytes
}

/** A zero-length range needs no download, but must still fail for a missing object or a bad offset. */
async function emptyRange(src: RangedSource, name: string, offset: number, signal?: AbortSignal): Promise<Uint8Array> {
  signal?.throwIfAborted()
  const st = await src.stat()
  if (st === null) throw new NotFoundError(name)
  if (offset > st.size) throw new ObjectRangeError(name, offset, 0, st.size)
  return new Uint8Array(0)
}
