/**
 * The one place where bytes from any source become trusted: a frame is decoded to its
 * end with its codec, so the codec checksum is checked and the result must be exactly `sizeU` bytes
 * (exact-size reads that never reached the codec checksum); a raw chunk must be exactly
 * its size, and when its header carries the chunk's SHA-256 (`ref.digest`), the bytes must hash to
 * it. A raw chunk without a digest (a legacy V3 build) can only be checked for its size.
 */
import { getCodec } from '../format/codec.ts'
import { CorruptFrameError } from '../errors.ts'
import { hexDigest, sameDigest, sha256Of } from '../format/raw-digests.ts'
import type { FrameRef } from './source.ts'

export function describeRef(ref: FrameRef): string {
  const what = ref.codec === 'none' ? 'chunk' : `${ref.codec} frame`
  return `${what} ${ref.buildId}/${ref.kind} @${ref.startU}+${ref.sizeU} (stored @${ref.startC}+${ref.sizeC})`
}

interface Ahead {
  readonly codec: FrameRef['codec']
  readonly sizeU: number
  readonly sizeC: number
  readonly plain: Promise<Uint8Array>
}

/** Verifications started before the fetch that will ask for them, by the stored bytes (their identity). */
const ahead = new WeakMap<Uint8Array, Ahead>()

/**
 * Start verifying `stored` as `ref` now, for a fetch that will ask for exactly these bytes soon (a
 * frame that came with its header decodes on a pool thread while the reader opens). The fetch's own
 * `verifyFrame` then takes this result instead of decoding the frame a second time; it is the same
 * check, run earlier. Nothing is kept if `stored` is never verified: the entry goes with the buffer.
 */
export function verifyAhead(ref: FrameRef, stored: Uint8Array): void {
  if (ref.digest !== undefined || ahead.has(stored)) return
  const plain = verifyFrame(ref, stored)
  plain.catch(() => {}) // observed by the fetch that takes it; a frame never asked for fails silently
  ahead.set(stored, { codec: ref.codec, sizeU: ref.sizeU, sizeC: ref.sizeC, plain })
}

/** The uncompressed bytes of `ref`, or CorruptFrameError saying what was expected and what was found. */
export async function verifyFrame(ref: FrameRef, stored: Uint8Array): Promise<Uint8Array> {
  const early = ahead.get(stored)
  if (early) {
    ahead.delete(stored) // taken once
    // Only a verification of these bytes as this very frame counts (the same codec and sizes, no digest).
    if (early.codec === ref.codec && early.sizeU === ref.sizeU && early.sizeC === ref.sizeC && ref.digest === undefined) return early.plain
  }
  if (stored.byteLength !== ref.sizeC) {
    throw new CorruptFrameError(`${describeRef(ref)}: expected ${ref.sizeC} stored bytes, found ${stored.byteLength}`)
  }
  let plain = stored
  if (ref.codec !== 'none') {
    plain = await getCodec(ref.codec).decompress(stored, ref.sizeU)
    // The codec promises exactly sizeU bytes; checked again because a short frame here means zeroed pages.
    if (plain.byteLength !== ref.sizeU) {
      throw new CorruptFrameError(`${describeRef(ref)}: decoded to ${plain.byteLength} bytes, expected ${ref.sizeU}`)
    }
  } else if (ref.sizeC !== ref.sizeU) {
    throw new CorruptFrameError(`${describeRef(ref)}: raw chunk with stored size ${ref.sizeC} != ${ref.sizeU}`)
  }
  if (ref.digest !== undefined) {
    const found = sha256Of(plain)
    if (!sameDigest(found, ref.digest)) {
      throw new CorruptFrameError(`${describeRef(ref)}: SHA-256 mismatch: expected ${hexDigest(ref.digest)}, found ${hexDigest(found)}`)
    }
  }
  return plain
}
