/**
 * LZ4 frames: one complete LZ4 *frame-format* stream per data frame, block checksums and
 * content checksum on, via lz4-napi's frame functions. Never the raw block API: it returns 0 bytes
 * for incompressible input and a size-prefixed block is not portable.
 *
 * lz4-napi's decoder ignores trailing bytes (a second frame, garbage), accepts empty input as an empty
 * frame and has no output limit. So before decoding, the frame's structure is walked here: magic,
 * descriptor, every block size, end mark, checksums, and nothing after it. The walk also bounds the
 * output: each compressed block yields at most the declared block maximum, so a frame whose bound
 * exceeds the expected size by a whole block is refused before anything is allocated.
 *
 * The V4 header body is one such frame too; the sync helpers serve the header codec.
 */
import { compressFrame, compressFrameSync, decompressFrame, decompressFrameSync } from 'lz4-napi'
import { asBuffer, type Codec, checkDecodedSize, checkFrameSize, corruptFrom } from './codec-common.ts'
import { CorruptFrameError } from '../errors.ts'

const MAGIC = 0x184d2204
const FRAME_OPTIONS = { contentChecksum: true, blockChecksums: true }
/** Block maximum sizes by BD id (LZ4 frame format §"Block Maximum Size"). */
const BLOCK_MAX: Record<number, number> = { 4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20 }

export const lz4Codec: Codec = {
  name: 'lz4',

  /** `level` is ignored: lz4-napi has one (fast) level, like e2b's lz4.Fast. */
  async compress(src) {
    return compressFrame(asBuffer(src), FRAME_OPTIONS)
  },

  async decompress(src, sizeU) {
    checkFrameSize(sizeU)
    checkLz4Frame(src, sizeU)
    let out: Uint8Array
    try {
      out = await decompressFrame(asBuffer(src))
    } catch (err) {
      throw corruptFrom('lz4', err)
    }
    return checkDecodedSize('lz4', out, sizeU)
  },
}

/** One LZ4 frame of `data`, checksums on (the V4 header body). */
export function lz4CompressFrameSync(data: Uint8Array): Uint8Array {
  return compressFrameSync(asBuffer(data), FRAME_OPTIONS)
}

/** Decode one LZ4 frame that must yield exactly `size` bytes; CorruptFrameError otherwise. */
export function lz4DecompressFrameSync(src: Uint8Array, size: number): Uint8Array {
  checkFrameSize(size)
  checkLz4Frame(src, size)
  let out: Uint8Array
  try {
    out = decompressFrameSync(asBuffer(src))
  } catch (err) {
    throw corruptFrom('lz4', err)
  }
  return checkDecodedSize('lz4', out, size)
}

interface Descriptor {
  blockChecksums: boolean
  contentChecksum: boolean
  blockMax: number
  contentSize?: number
  /** Offset of the first block. */
  end: number
}

/**
 * Walks one LZ4 frame without decoding it and checks that it can yield `sizeU` bytes and not a block
 * more, that some checksum covers it, and that it ends exactly at the end of `src`.
 */
export function checkLz4Frame(src: Uint8Array, sizeU: number): void {
  const bad = (what: string): never => {
    throw new CorruptFrameError(`lz4 frame (${src.byteLength} bytes, sizeU ${sizeU}): ${what}`)
  }
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength)
  const d = readDescriptor(view, bad)
  if (!d.blockChecksums && !d.contentChecksum) bad('expected block or content checksums, found none')
  if (d.contentSize !== undefined && d.contentSize !== sizeU) bad(`expected content size ${sizeU}, found ${d.contentSize}`)
  let pos = d.end
  let bound = 0
  for (;;) {
    if (pos + 4 > src.byteLength) bad(`truncated block header at offset ${pos}`)
    const word = view.getUint32(pos, true)
    pos += 4
    if (word === 0) break
    const size = word & 0x7fff_ffff
    if (size > d.blockMax) bad(`expected block size <= ${d.blockMax}, found ${size} at offset ${pos - 4}`)
    pos += size + (d.blockChecksums ? 4 : 0)
    if (pos > src.byteLength) bad(`truncated block ending at offset ${pos}`)
    bound += word >>> 31 ? size : d.blockMax
  }
  if (d.contentChecksum) pos += 4
  if (pos > src.byteLength) bad('truncated before the content checksum')
  if (pos < src.byteLength) bad(`expected end of frame, found ${src.byteLength - pos} trailing bytes`)
  if (bound < sizeU) bad(`expected blocks for ${sizeU} bytes, found room for at most ${bound}`)
  if (bound >= sizeU + d.blockMax) bad(`expected at most ${sizeU} bytes, found blocks for up to ${bound}`)
}

function readDescriptor(view: DataView, bad: (what: string) => never): Descriptor {
  if (view.byteLength < 7) bad(`expected at least 7 bytes, found ${view.byteLength}`)
  const magic = view.getUint32(0, true)
  if (magic !== MAGIC) bad(`expected magic 0x${MAGIC.toString(16)}, found 0x${magic.toString(16)}`)
  const flg = view.getUint8(4)
  const bd = view.getUint8(5)
  if (flg >>> 6 !== 1) bad(`expected frame version 1, found ${flg >>> 6}`)
  if (flg & 0x02 || bd & 0x8f) bad('reserved descriptor bits set')
  if (flg & 0x01) bad('expected no dictionary id, found one')
  const blockMax = BLOCK_MAX[(bd >>> 4) & 7]
  if (blockMax === undefined) bad(`expected block maximum id 4-7, found ${(bd >>> 4) & 7}`)
  let end = 6
  let contentSize: number | undefined
  if (flg & 0x08) {
    if (view.byteLength < 15) bad('truncated content size')
    const hi = view.getUint32(10, true)
    contentSize = hi >= 0x20_0000 ? Number.POSITIVE_INFINITY : hi * 0x1_0000_0000 + view.getUint32(6, true)
    end += 8
  }
  // +1: the header checksum byte; lz4-napi verifies it.
  return { blockChecksums: (flg & 0x10) !== 0, contentChecksum: (flg & 0x04) !== 0, blockMax, contentSize, end: end + 1 }
}
