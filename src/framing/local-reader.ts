/**
 * Read any uncompressed byte range of a framed data file on local disk: the frames covering the range
 * are read and decoded (each to its end, so the codec checksum is checked); raw files are read directly.
 *
 * `readFramedRange` returns the bytes (a block read, a small range). `writeFramedRange` decodes a range
 * of any size into another file (unpack): reads, decodes and writes of successive frames overlap, like
 * `zstd -d`'s asynchronous I/O, with at most `workers` frames decoding at once and `workers + 2`
 * frames held in memory, whatever the range size.
 */
import type { FileHandle } from 'node:fs/promises'
import { type Codec, getCodec } from '../format/codec.ts'
import { CorruptFrameError, InvalidArgumentError } from '../errors.ts'
import type { FrameTable } from '../format/frame-table.ts'
import type { Frame } from '../format/types.ts'
import { readExactly, writeFully } from '../util/file-io.ts'

/** Raw (`none`) ranges are copied in pieces of this size. */
const RAW_PIECE = 4 * 1024 * 1024

export async function readFramedRange(
  file: FileHandle,
  table: FrameTable | null,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  if (length === 0) return Buffer.alloc(0)
  if (!table || table.codec === 'none') {
    const out = Buffer.allocUnsafe(length)
    await readExact(file, out, offset)
    return out
  }
  const codec = getCodec(table.codec)
  const frames = table.framesForRange(offset, length)
  // One frame exactly: its decoded bytes are the answer, no copy.
  if (frames.length === 1 && frames[0].startU === offset && frames[0].sizeU === length) return decodeFrame(file, codec, frames[0])
  // framesForRange covers every byte of the range, so every byte of `out` is written below.
  const out = Buffer.allocUnsafe(length)
  for (const frame of frames) {
    const plain = await decodeFrame(file, codec, frame)
    const { from, to } = overlap(frame, offset, length)
    out.set(plain.subarray(from - frame.startU, to - frame.startU), from - offset)
  }
  return out
}

export interface WriteRangeOptions {
  /** Frames decoded at once (each on a libuv pool thread). Default 1, like `zstd -d`. */
  readonly workers?: number
  readonly signal?: AbortSignal
}

/**
 * Decode [offset, offset + length) of the data file into `out` at `outOffset`. On error or abort, every
 * read, decode and write already started finishes before this rejects.
 */
export async function writeFramedRange(
  file: FileHandle,
  table: FrameTable | null,
  offset: number,
  length: number,
  out: FileHandle,
  outOffset: number,
  opts: WriteRangeOptions = {},
): Promise<void> {
  const raw = !table || table.codec === 'none'
  const codec = raw ? null : getCodec(table.codec)
  const pieces = raw ? rawPieces(offset, length) : table.framesForRange(offset, length)
  const workers = Math.max(1, Math.floor(opts.workers ?? 1))
  const decoding = new Limiter(workers)
  // One write at a time: concurrent writes to one file only contend for its lock.
  const writing = new Limiter(1)
  const inflight = new Set<Promise<void>>()
  let failure: { err: unknown } | null = null

  const copyPiece = async (piece: Frame): Promise<void> => {
    const stored = await readStored(file, piece)
    const plain = codec ? await decoding.run(() => codec.decompress(stored, piece.sizeU)) : stored
    const { from, to } = overlap(piece, offset, length)
    await writing.run(() => writeFully(out, plain.subarray(from - piece.startU, to - piece.startU), outOffset + (from - offset)))
  }

  for (const piece of pieces) {
    while (inflight.size >= workers + 2 && !failure) await Promise.race(inflight)
    if (!failure && opts.signal?.aborted) failure = { err: opts.signal.reason }
    if (failure) break
    const task: Promise<void> = copyPiece(piece)
      .catch((err: unknown) => {
        failure ??= { err }
      })
      .finally(() => inflight.delete(task))
    inflight.add(task)
  }
  await Promise.allSettled([...inflight])
  if (failure) throw failure.err
}

/** Read one frame's stored bytes and decode them (the codec checks the frame to its end). */
async function decodeFrame(file: FileHandle, codec: Codec, frame: Frame): Promise<Uint8Array> {
  return codec.decompress(await readStored(file, frame), frame.sizeU)
}

async function readStored(file: FileHandle, frame: Frame): Promise<Buffer> {
  const stored = Buffer.allocUnsafe(frame.sizeC)
  await readExact(file, stored, frame.startC)
  return stored
}

/** A raw range as frame-like pieces (stored = plain), so one loop copies both kinds. */
function rawPieces(offset: number, length: number): Frame[] {
  const pieces: Frame[] = []
  for (let pos = offset; pos < offset + length; pos += RAW_PIECE) {
    const size = Math.min(RAW_PIECE, offset + length - pos)
    pieces.push({ startU: pos, sizeU: size, startC: pos, sizeC: size })
  }
  return pieces
}

/** The part of [frame.startU, +sizeU) inside [offset, +length), as absolute uncompressed offsets. */
function overlap(frame: Frame, offset: number, length: number): { from: number; to: number } {
  return { from: Math.max(offset, frame.startU), to: Math.min(offset + length, frame.startU + frame.sizeU) }
}

/** At most `max` calls of `run` active at once; the others wait in order. */
class Limiter {
  private active = 0
  private readonly waiters: (() => void)[] = []
  private readonly max: number
  constructor(max: number) {
    this.max = max
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    while (this.active >= this.max) await new Promise<void>((resolve) => this.waiters.push(resolve))
    this.active++
    try {
      return await fn()
    } finally {
      this.active--
      this.waiters.shift()?.()
    }
  }
}

function readExact(file: FileHandle, buf: Buffer, position: number): Promise<void> {
  return readExactly(file, buf, position, (done) =>
    done === 0 && position === 0
      ? new InvalidArgumentError('data file is empty')
      : new CorruptFrameError(`data file truncated: needed ${buf.byteLength} bytes at ${position}, found ${done}`),
  )
}
