/**
 * Frame codecs. Each data frame is compressed alone so any frame can be fetched and
 * decoded alone. `decompress` is the single place a frame's integrity is checked: it always decodes to
 * the end of the frame (so the codec checksum is verified), accepts exactly one frame with nothing
 * after it, and never allocates more than the `sizeU` the frame table promised (plus one codec block
 * for LZ4). Every failure is a CorruptFrameError: callers drop the bytes and try another source.
 *
 * Both real codecs are asynchronous on the libuv thread pool, so N concurrent calls use N cores.
 */
import { type Codec, checkDecodedSize, checkFrameSize } from './codec-common.ts'
import { InvalidArgumentError } from '../errors.ts'
import { lz4Codec } from './lz4.ts'
import type { CodecName } from './types.ts'
import { zstdCodec } from './zstd.ts'

export type { Codec } from './codec-common.ts'
export { checkFrameSize, MAX_FRAME_SIZE } from './codec-common.ts'

/** Raw frames: stored bytes are the data; only the size can be checked. */
const noneCodec: Codec = {
  name: 'none',
  async compress(src) {
    return src
  },
  async decompress(src, sizeU) {
    checkFrameSize(sizeU)
    return checkDecodedSize('none', src, sizeU)
  },
}

const CODECS: Record<CodecName, Codec> = { none: noneCodec, zstd: zstdCodec, lz4: lz4Codec }

export function getCodec(name: CodecName): Codec {
  const codec = Object.hasOwn(CODECS, name) ? CODECS[name] : undefined
  if (codec === undefined) {
    throw new InvalidArgumentError(`expected codec none, zstd or lz4, found ${JSON.stringify(name)}`)
  }
  return codec
}
