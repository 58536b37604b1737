/**
 * Small fs helpers of the filesystem store: error mapping, durable writes, exact reads.
 */
import { type FileHandle, open, writeFile } from 'node:fs/promises'
import { SnapswarmError } from '../errors.ts'
import { readExactly } from '../util/file-io.ts'
import { NotFoundError, ObjectRangeError, StorageError } from './store.ts'

/** fs error codes worth retrying: transient resource exhaustion, not a property of the request. */
const RETRYABLE_FS = new Set(['EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'EINTR'])

/** Maps an fs error; on reads ENOENT/ENOTDIR mean "no such object", on writes they are failures. */
export function fsError(err: unknown, op: string, name: string, reading = true): Error {
  if (err instanceof SnapswarmError) return err
  if (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')) return err
  const code = (err as NodeJS.ErrnoException)?.code
  if (reading && (code === 'ENOENT' || code === 'ENOTDIR')) return new NotFoundError(name, { cause: err })
  const detail = err instanceof Error ? err.message : String(err)
  return new StorageError(`fs ${op} ${JSON.stringify(name)}: ${detail}`, {
    retryable: code !== undefined && RETRYABLE_FS.has(code),
    cause: err,
  })
}

/** Writes `data` to a new file and fsyncs it, so the rename that follows publishes durable bytes. */
export async function writeDurable(path: string, data: Uint8Array, signal?: AbortSignal): Promise<void> {
  const fh = await open(path, 'wx')
  try {
    await writeFile(fh, data, { signal })
    await fh.sync()
  } finally {
    await fh.close()
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Reads exactly `length` bytes at `offset`; a file that shrank under us is a range error, not junk. */
export async function readFully(fh: FileHandle, name: string, offset: number, length: number): Promise<Uint8Array> {
  const buf = Buffer.allocUnsafe(length)
  await readExactly(fh, buf, offset, () => new ObjectRangeError(name, offset, length))
  return buf
}
