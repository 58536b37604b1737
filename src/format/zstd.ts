/**
 * zstd frames: one complete zstd frame per data frame, content checksum on, content size
 * recorded. Implementation: node:zlib's zstd (libzstd 1.5.7 in Node 24), chosen over zstd-napi by
 * measurement (README "Codec choice (measured)"): zstd-napi's calls are synchronous on the main
 * thread, so two concurrent frames use one core; zlib's async calls run on the libuv pool. Each frame
 * is handed to a zlib stream whole, in one step (zstd-engine.ts): compression in one pass with a fresh
 * context, decoding through kept streams that reuse theirs; the one-shot functions are the fallback.
 * Output in one chunk matters: zlib's default 16 KiB chunks cost 30% of compress and 75% of
 * decompress throughput.
 *
 * Before decoding, the frame's structure is walked (header, block headers, checksum) so that
 *  - a frame without a checksum or without a recorded content size is refused (nothing to verify,
 *    nothing to bound the allocation with), and the recorded size must equal the expected sizeU;
 *  - trailing bytes or a second frame are refused: libzstd would silently decode them too;
 *  - a frame claiming more than sizeU bytes is refused before libzstd allocates anything. libzstd
 *    sizes its buffers by min(window, content size), and maxOutputLength backs this up.
 */
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import { asBuffer, type Codec, checkDecodedSize, checkFrameSize, corruptFrom } from './codec-common.ts'
import { CorruptFrameError, InvalidArgumentError } from '../errors.ts'
import { ENGINES_SUPPORTED, EnginePool, compressOnce } from './zstd-engine.ts'

const compressAsync = promisify(zlib.zstdCompress)
const decompressAsync = promisify(zlib.zstdDecompress)
const Z = zlib.constants

/** e2b's "level 2" default is libzstd level 3. */
export const ZSTD_DEFAULT_LEVEL = 3
export const ZSTD_MIN_LEVEL = 1
export const ZSTD_MAX_LEVEL = 19

const MAGIC = 0xfd2fb528
const DICT_ID_BYTES = [0, 1, 2, 4]
const FCS_BYTES = [0, 2, 4, 8]
const BLOCK_RLE = 1
const BLOCK_RESERVED = 3
/** node:zlib's smallest output chunk: smaller frames decode through the one-shot function. */
const MIN_CHUNK = 64

/** Decoding only: see zstd-engine.ts for why compression keeps a fresh context per frame. */
const decompressors = new EnginePool()

export const zstdCodec: Codec = {
  name: 'zstd',

  async compress(src, level = ZSTD_DEFAULT_LEVEL) {
    if (!Number.isInteger(level) || level < ZSTD_MIN_LEVEL || level > ZSTD_MAX_LEVEL) {
      throw new InvalidArgumentError(`expected zstd level in [${ZSTD_MIN_LEVEL}, ${ZSTD_MAX_LEVEL}], found ${level}`)
    }
    const params = { [Z.ZSTD_c_compressionLevel]: level, [Z.ZSTD_c_checksumFlag]: 1, [Z.ZSTD_c_contentSizeFlag]: 1 }
    // One output chunk of compressBound size: the default 16 KiB chunks cost a third of the throughput.
    const chunkSize = Math.max(MIN_CHUNK, compressBound(src.byteLength))
    if (!ENGINES_SUPPORTED) return compressAsync(src, { params, pledgedSrcSize: src.byteLength, chunkSize })
    // Whole input in one ZSTD_e_end step: content size recorded without a pledge, and libzstd
    // compresses in one pass, 1.3% smaller on VM-like data than the one-shot function's two steps.
    const out = await compressOnce(zlib.createZstdCompress({ params, chunkSize }), asBuffer(src), chunkSize)
    checkZstdFrame(out, src.byteLength) // exactly one complete frame came out of the stream
    return out
  },

  async decompress(src, sizeU) {
    checkFrameSize(sizeU)
    checkZstdFrame(src, sizeU)
    let out: Uint8Array
    try {
      if (ENGINES_SUPPORTED && sizeU >= MIN_CHUNK) {
        // chunkSize = sizeU: each frame decodes in one pass into a fresh buffer of its own.
        const create = () => zlib.createZstdDecompress({ chunkSize: sizeU })
        out = await decompressors.run(String(sizeU), create, asBuffer(src), sizeU)
      } else {
        // chunkSize > sizeU: the whole output and the end of the frame fit one call, no second chunk.
        out = await decompressAsync(asBuffer(src), { maxOutputLength: Math.max(1, sizeU), chunkSize: sizeU + 64 })
      }
    } catch (err) {
      throw corruptFrom('zstd', err)
    }
    return checkDecodedSize('zstd', out, sizeU)
  },
}

/** ZSTD_COMPRESSBOUND from zstd.h. */
function compressBound(n: number): number {
  return n + (n >>> 8) + (n < 128 * 1024 ? (128 * 1024 - n) >>> 11 : 0)
}

/**
 * Walks one zstd frame (RFC 8878 §3.1.1) without decoding it: checks the magic, the header flags, the
 * recorded content size against `sizeU`, every block header, and that the frame ends exactly at the
 * end of `src`. Throws CorruptFrameError.
 */
export function checkZstdFrame(src: Uint8Array, sizeU: number): void {
  const bad = (what: string): never => {
    throw new CorruptFrameError(`zstd frame (${src.byteLength} bytes, sizeU ${sizeU}): ${what}`)
  }
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength)
  if (src.byteLength < 5) bad(`expected at least 5 bytes, found ${src.byteLength}`)
  const magic = view.getUint32(0, true)
  if (magic !== MAGIC) bad(`expected magic 0x${MAGIC.toString(16)}, found 0x${magic.toString(16)}`)
  const fhd = src[4]
  const fcsFlag = fhd >>> 6
  const singleSegment = (fhd >>> 5) & 1
  if (fhd & 0x08) bad('reserved header bit set')
  if (!(fhd & 0x04)) bad('expected the content checksum flag, found it off')
  let pos = 5 + (singleSegment ? 0 : 1)
  const dictBytes = DICT_ID_BYTES[fhd & 3]
  const fcsBytes = fcsFlag === 0 ? singleSegment : FCS_BYTES[fcsFlag]
  if (fcsBytes === 0) bad('expected a recorded content size, found none')
  if (pos + dictBytes + fcsBytes > src.byteLength) bad('truncated frame header')
  for (let i = 0; i < dictBytes; i++) if (src[pos + i] !== 0) bad('expected no dictionary id, found one')
  pos += dictBytes
  const fcs = readContentSize(view, pos, fcsBytes)
  if (fcs !== sizeU) bad(`expected content size ${sizeU}, found ${fcs}`)
  pos = walkBlocks(src, pos + fcsBytes, bad)
  if (pos + 4 > src.byteLength) bad('truncated before the content checksum')
  if (pos + 4 < src.byteLength) bad(`expected end of frame, found ${src.byteLength - pos - 4} trailing bytes`)
}

function readContentSize(view: DataView, pos: number, bytes: number): number {
  switch (bytes) {
    case 1:
      return view.getUint8(pos)
    case 2:
      return view.getUint16(pos, true) + 256
    case 4:
      return view.getUint32(pos, true)
    default:
      // 8 bytes: anything above 2^53 cannot equal a safe sizeU, and Infinity compares unequal.
      return view.getUint32(pos + 4, true) >= 0x20_0000
        ? Number.POSITIVE_INFINITY
        : view.getUint32(pos + 4, true) * 0x1_0000_0000 + view.getUint32(pos, true)
  }
}

/** Returns the offset just after the last block. Each step advances ≥ 3 bytes: bounded by src size. */
function walkBlocks(src: Uint8Array, start: number, bad: (what: string) => never): number {
  let pos = start
  for (;;) {
    if (pos + 3 > src.byteLength) bad(`truncated block header at offset ${pos}`)
    const header = src[pos] | (src[pos + 1] << 8) | (src[pos + 2] << 16)
    const type = (header >>> 1) & 3
    if (type === BLOCK_RESERVED) bad(`reserved block type at offset ${pos}`)
    const payload = type === BLOCK_RLE ? 1 : header >>> 3
    pos += 3 + payload
    if (pos > src.byteLength) bad(`truncated block ending at offset ${pos}`)
    if (header & 1) return pos
  }
}
