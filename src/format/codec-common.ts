/**
 * What every codec module shares: the Codec interface and the checks made before any decoding
 * starts. Kept apart from codec.ts so the codec modules do not import their own registry.
 */
import { CorruptFrameError, InvalidArgumentError } from '../errors.ts'
import type { CodecName } from './types.ts'

export interface Codec {
  readonly name: CodecName
  /** Compress one whole frame. `level` applies to zstd only (1-19, default 3). */
  compress(src: Uint8Array, level?: number): Promise<Uint8Array>
  /** Decode one whole frame; CorruptFrameError unless it yields exactly `sizeU` verified bytes. */
  decompress(src: Uint8Array, sizeU: number): Promise<Uint8Array>
}

/** Largest frame sizeU: V4 stores sizeU and sizeC as i32. */
export const MAX_FRAME_SIZE = 0x7fff_ffff

/** A sizeU from a frame table must be a usable allocation size before any decoding starts. */
export function checkFrameSize(sizeU: number): void {
  if (!Number.isInteger(sizeU) || sizeU < 0 || sizeU > MAX_FRAME_SIZE) {
    throw new InvalidArgumentError(`expected frame sizeU in [0, ${MAX_FRAME_SIZE}], found ${sizeU}`)
  }
}

/** The decoded length is the last check, whatever the library said (short or long = error). */
export function checkDecodedSize(codec: CodecName, out: Uint8Array, sizeU: number): Uint8Array {
  if (out.byteLength !== sizeU) {
    throw new CorruptFrameError(`${codec} frame: expected ${sizeU} decoded bytes, found ${out.byteLength}`)
  }
  return out
}

/** Library errors (checksum, malformed input, output limit) become one named error with the reason. */
export function corruptFrom(codec: CodecName, err: unknown): CorruptFrameError {
  if (err instanceof CorruptFrameError) return err
  const reason = err instanceof Error ? err.message : String(err)
  return new CorruptFrameError(`${codec} frame does not decode: ${reason}`, { cause: err })
}

/** A Node Buffer view of the same bytes (the native bindings want Buffers), without copying. */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}
