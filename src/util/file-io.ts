/**
 * Positional reads and writes that do the whole job: `read(2)` and `write(2)` may move fewer bytes
 * than asked (a signal, a pipe, a network filesystem), so every caller that needs all of them loops.
 * These are the loops, once.
 */
import { type FileHandle, open } from 'node:fs/promises'

/** The file at `path` opened for reading, or null when there is none (any other error is thrown). */
export async function openIfExists(path: string): Promise<FileHandle | null> {
  return open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null
    throw err
  })
}

/** Reads into `buf` from `position` until it is full or the file ends; returns the bytes read. */
export async function readUpTo(fh: FileHandle, buf: Uint8Array, position: number): Promise<number> {
  let done = 0
  while (done < buf.byteLength) {
    const { bytesRead } = await fh.read(buf, done, buf.byteLength - done, position + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done
}

/**
 * Fills `buf` from `position`. A file that ends first throws `short(done)` (`done`: the bytes it
 * had), the caller's error for a truncated or shrunken file: never a partly filled buffer.
 */
export async function readExactly(fh: FileHandle, buf: Uint8Array, position: number, short: (done: number) => Error): Promise<void> {
  const done = await readUpTo(fh, buf, position)
  if (done < buf.byteLength) throw short(done)
}

/** Writes all of `data` at `position`. */
export async function writeFully(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0
  while (done < data.byteLength) {
    const { bytesWritten } = await fh.write(data, done, data.byteLength - done, position + done)
    done += bytesWritten
  }
}
