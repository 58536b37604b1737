/**
 * Read any uncompressed byte range of a framed data file on local disk: the frames covering the range
 * are read and decoded (each to its end, so the codec checksum is checked); raw files are read directly.
 */
import type { FileHandle } from 'node:fs/promises'
import { getCodec } from '../format/codec.ts'
import { CorruptFrameError, InvalidArgumentError } from '../format/errors.ts'
import type { FrameTable } from '../format/frame-table.ts'

export async function readFramedRange(
  file: FileHandle,
  table: FrameTable | null,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  const out = Buffer.alloc(length)
  if (length === 0) return out
  if (!table || table.codec === 'none') {
    await readExact(file, out, offset)
    return out
  }
  const codec = getCodec(table.codec)
  for (const frame of table.framesForRange(offset, length)) {
    const stored = Buffer.allocUnsafe(frame.sizeC)
    await readExact(file, stored, frame.startC)
    const plain = await codec.decompress(stored, frame.sizeU)
    // Copy the overlap of [frame.startU, +sizeU) and [offset, +length).
    const from = Math.max(offset, frame.startU)
    const to = Math.min(offset + length, frame.startU + frame.sizeU)
    out.set(plain.subarray(from - frame.startU, to - frame.startU), from - offset)
  }
  return out
}

async function readExact(file: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < buf.byteLength) {
    const { bytesRead } = await file.read(buf, done, buf.byteLength - done, position + done)
    if (bytesRead === 0) {
      if (done === 0 && position === 0) throw new InvalidArgumentError('data file is empty')
      throw new CorruptFrameError(`data file truncated: needed ${buf.byteLength} bytes at ${position}, found ${done}`)
    }
    done += bytesRead
  }
}
