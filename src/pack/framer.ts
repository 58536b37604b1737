/**
 * The framing pipeline of DESIGN §6: read a data file in frame-sized buffers → SHA-256 of the
 * uncompressed stream → compress frames concurrently (bounded) → emit them in file order, so
 * compressed offsets follow the file. Memory is bounded by `workers` in-flight frames (plus what the
 * sink holds), whatever the file size.
 */
import { createHash } from 'node:crypto'
import type { FileHandle } from 'node:fs/promises'
import { getCodec } from '../format/codec.ts'
import { InvalidArgumentError } from '../format/errors.ts'
import { FrameTable } from '../format/frame-table.ts'
import type { CodecName } from '../format/types.ts'

export interface FramingOptions {
  readonly codec: CodecName
  readonly level?: number
  readonly frameSize: number
  /** Frames compressed concurrently (each on a libuv pool thread). */
  readonly workers: number
  readonly signal?: AbortSignal
  /** Called after each frame is emitted: uncompressed bytes read so far, compressed bytes emitted. */
  readonly onProgress?: (readU: number, emittedC: number) => void
}

/** Receives each frame's stored bytes in file order; awaiting it is the pipeline's backpressure. */
export type FrameSink = (stored: Uint8Array, sizeU: number) => Promise<void>

export interface FramingResult {
  readonly table: FrameTable
  readonly sha256: Uint8Array
  readonly size: number
}

/**
 * Frame `length` bytes of `file` starting at `offset` (the whole file by default). A raw (`none`) file
 * is emitted in frame-sized chunks too, and gets a table with codec `none` the caller may drop.
 */
export async function frameFile(
  file: FileHandle,
  opts: FramingOptions,
  sink: FrameSink,
  range?: { offset: number; length: number },
): Promise<FramingResult> {
  if (!Number.isInteger(opts.frameSize) || opts.frameSize <= 0) {
    throw new InvalidArgumentError(`frame size must be a positive integer, found ${opts.frameSize}`)
  }
  const workers = Math.max(1, Math.floor(opts.workers))
  const start = range?.offset ?? 0
  const length = range?.length ?? (await file.stat()).size - start
  const codec = getCodec(opts.codec)
  const hash = createHash('sha256')
  const sizes: { sizeU: number; sizeC: number }[] = []
  // Frames in flight, oldest first. Each promise resolves to the stored bytes of its frame.
  const inflight: { promise: Promise<Uint8Array>; sizeU: number }[] = []
  let readU = 0
  let emittedC = 0

  const emitOldest = async (): Promise<void> => {
    const head = inflight.shift()!
    const stored = await head.promise
    await sink(stored, head.sizeU)
    sizes.push({ sizeU: head.sizeU, sizeC: stored.byteLength })
    emittedC += stored.byteLength
    opts.onProgress?.(readU, emittedC)
  }

  try {
    for (let pos = 0; pos < length; pos += opts.frameSize) {
      opts.signal?.throwIfAborted()
      const sizeU = Math.min(opts.frameSize, length - pos)
      const buf = Buffer.allocUnsafe(sizeU)
      await readFully(file, buf, start + pos)
      hash.update(buf)
      readU += sizeU
      const promise = opts.codec === 'none' ? Promise.resolve(buf) : codec.compress(buf, opts.level)
      // A rejected frame is awaited by emitOldest or by the cleanup below; never unhandled.
      promise.catch(() => {})
      inflight.push({ promise, sizeU })
      if (inflight.length >= workers) await emitOldest()
    }
    while (inflight.length > 0) await emitOldest()
  } finally {
    // On error or abort, wait for every in-flight compression before returning (DESIGN §6, §9:
    // close racing with in-flight work). Their results are discarded.
    await Promise.allSettled(inflight.map((f) => f.promise))
  }
  return { table: FrameTable.fromSizes(opts.codec, sizes), sha256: hash.digest(), size: length }
}

async function readFully(file: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < buf.byteLength) {
    const { bytesRead } = await file.read(buf, done, buf.byteLength - done, position + done)
    if (bytesRead === 0) {
      throw new InvalidArgumentError(`file ended at ${position + done}, expected ${buf.byteLength - done} more bytes`)
    }
    done += bytesRead
  }
}
