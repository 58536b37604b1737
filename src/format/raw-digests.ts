/**
 * Per-chunk SHA-256 digests of a raw (uncompressed) build's data file, so that a lazy read can verify
 * the one chunk it fetched before handing out a byte of it. A whole-file SHA-256 cannot do that: a
 * 4 KiB read would have to download and hash the whole file first.
 *
 * Where they are stored, and why there. e2b-dev/infra writes an uncompressed build's V4 header
 * (its `v4-header-for-uncompressed` option) with codec 0 and NO frames, and its frame-table reader
 * rejects codec 0 with a frame count above 0 as a corrupt header, so a raw frame table cannot carry
 * them. Its V4 reader decodes the builds and the mappings of the LZ4 body and ignores whatever follows
 * them. The digests therefore travel in a trailer after the mappings, inside the same LZ4 body: e2b
 * reads such a header as an ordinary V4 raw build, every copy of the header (storage, a peer's
 * pending header, a child's header) carries the digests with it, and the header is still written
 * last and once, so no second object can be missing or out of step with it. A header without the
 * trailer (V3, or V4 written by e2b) still decodes; its raw layers cannot be verified chunk by chunk.
 *
 * Trailer layout (little-endian), present only when some raw build has digests:
 *   magic u32 = RAW_DIGESTS_MAGIC ("SSRD") · version u32 = 1 · count u32 ·
 *   per build, sorted by raw id: id [16] · chunkSize u32 · n u32 · n × {index u32 · sha256 [32]}
 * Chunk `index` covers [index × chunkSize, min((index + 1) × chunkSize, fileSize)) of the data file.
 * Like frame tables, the list is trimmed to the chunks some mapping touches (gaps allowed).
 */
import { createHash } from 'node:crypto'
import { FormatError, InvalidArgumentError, LimitError } from '../errors.ts'
import { type ByteRange, MAX_FRAMES_PER_TABLE } from './frame-table.ts'

/** "SSRD" as the four bytes of a little-endian u32: marks the trailer unambiguously. */
export const RAW_DIGESTS_MAGIC = 0x44525353
export const RAW_DIGESTS_VERSION = 1
export const SHA256_BYTES = 32
/** Smallest chunk: the read path's page; every chunk must start on a page boundary. */
export const MIN_DIGEST_CHUNK = 4096
/** Largest chunk: one chunk is one fetch and one allocation on the read path. */
export const MAX_DIGEST_CHUNK = 1024 * 1024 * 1024
/** Bytes per listed chunk in the trailer: index + digest. */
export const DIGEST_ENTRY_BYTES = 4 + SHA256_BYTES

/** One chunk of a raw data file and the SHA-256 its bytes must have. */
export interface DigestChunk {
  readonly index: number
  readonly startU: number
  readonly sizeU: number
  readonly sha256: Uint8Array
}

export class RawDigests {
  readonly chunkSize: number
  /** Listed chunk indices, strictly increasing. */
  readonly indices: readonly number[]
  /** `indices.length` × 32 bytes, in the order of `indices`. */
  readonly sha256: Uint8Array

  /** Takes the values as given; call validate() on anything from outside. */
  constructor(chunkSize: number, indices: readonly number[], sha256: Uint8Array) {
    this.chunkSize = chunkSize
    this.indices = Object.freeze(indices.slice())
    this.sha256 = sha256
  }

  /** Digests of chunks 0..n-1 in file order, 32 bytes each (what the framer computes). */
  static fromDigests(chunkSize: number, digests: Uint8Array): RawDigests {
    const n = Math.floor(digests.byteLength / SHA256_BYTES)
    return new RawDigests(chunkSize, Array.from({ length: n }, (_, i) => i), digests.slice(0, n * SHA256_BYTES))
  }

  get count(): number {
    return this.indices.length
  }

  digestOf(position: number): Uint8Array {
    return this.sha256.subarray(position * SHA256_BYTES, (position + 1) * SHA256_BYTES)
  }

  /** The listed chunk holding `offsetU` of a data file of `fileSize` bytes, or undefined. O(log n). */
  chunkAt(offsetU: number, fileSize: number): DigestChunk | undefined {
    if (!Number.isSafeInteger(offsetU) || offsetU < 0 || offsetU >= fileSize) return undefined
    const index = Math.floor(offsetU / this.chunkSize)
    const position = this.positionOf(index)
    return position < 0 ? undefined : this.chunk(position, fileSize)
  }

  /** The chunk at list position `position`. */
  chunk(position: number, fileSize: number): DigestChunk {
    const index = this.indices[position]
    const startU = index * this.chunkSize
    return { index, startU, sizeU: Math.min(this.chunkSize, fileSize - startU), sha256: this.digestOf(position) }
  }

  /** Keeps only the chunks some range [start, end) touches, as the header stores them. */
  trim(ranges: readonly ByteRange[]): RawDigests {
    const keep: number[] = []
    for (const r of ranges) {
      if (r.end <= r.start) continue
      const first = Math.floor(r.start / this.chunkSize)
      const last = Math.floor((r.end - 1) / this.chunkSize)
      for (let p = this.firstAtOrAfter(first); p < this.indices.length && this.indices[p] <= last; p++) keep.push(p)
    }
    const positions = [...new Set(keep)].sort((a, b) => a - b)
    if (positions.length === this.indices.length) return this
    const out = new Uint8Array(positions.length * SHA256_BYTES)
    for (let i = 0; i < positions.length; i++) out.set(this.digestOf(positions[i]), i * SHA256_BYTES)
    return new RawDigests(this.chunkSize, positions.map((p) => this.indices[p]), out)
  }

  /** First mapped byte in `ranges` (sorted, disjoint) that no listed chunk covers, or undefined. */
  firstUncovered(ranges: readonly ByteRange[]): number | undefined {
    for (const r of ranges) {
      for (let pos = r.start; pos < r.end; ) {
        const index = Math.floor(pos / this.chunkSize)
        if (this.positionOf(index) < 0) return pos
        pos = (index + 1) * this.chunkSize
      }
    }
    return undefined
  }

  /**
   * Geometry and bounds, before anything uses the list: chunk size in [4 KiB, 64 MiB] and a multiple
   * of 4 KiB, at most MAX_FRAMES_PER_TABLE entries, indices strictly increasing and inside the file,
   * 32 bytes of digest per entry.
   */
  validate(fileSize: number, Err: new (msg: string) => Error = FormatError, context = 'raw digests'): void {
    const n = this.indices.length
    if (n > MAX_FRAMES_PER_TABLE) throw new LimitError(`${context}: expected <= ${MAX_FRAMES_PER_TABLE} chunks, found ${n}`)
    const cs = this.chunkSize
    if (!Number.isInteger(cs) || cs < MIN_DIGEST_CHUNK || cs > MAX_DIGEST_CHUNK || cs % MIN_DIGEST_CHUNK !== 0) {
      throw new Err(`${context}: expected a chunk size in [${MIN_DIGEST_CHUNK}, ${MAX_DIGEST_CHUNK}], a multiple of ${MIN_DIGEST_CHUNK}, found ${cs}`)
    }
    if (!(this.sha256 instanceof Uint8Array) || this.sha256.byteLength !== n * SHA256_BYTES) {
      throw new Err(`${context}: expected ${n * SHA256_BYTES} digest bytes for ${n} chunks, found ${this.sha256?.byteLength}`)
    }
    let prev = -1
    for (let i = 0; i < n; i++) {
      const index = this.indices[i]
      if (!Number.isInteger(index) || index <= prev || index * cs >= fileSize) {
        throw new Err(`${context}: chunk ${i} of ${n}: expected an index > ${prev} starting inside the file size ${fileSize}, found ${index}`)
      }
      prev = index
    }
  }

  private positionOf(index: number): number {
    const p = this.firstAtOrAfter(index)
    return p < this.indices.length && this.indices[p] === index ? p : -1
  }

  private firstAtOrAfter(index: number): number {
    let lo = 0
    let hi = this.indices.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.indices[mid] < index) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

export function sha256Of(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest()
}

/** Equal digests (false on any length difference). */
export function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

export function hexDigest(d: Uint8Array): string {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex')
}

/** A raw build's frame size must be a usable digest chunk; checked before framing starts. */
export function checkDigestChunk(chunkSize: number): void {
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_DIGEST_CHUNK || chunkSize > MAX_DIGEST_CHUNK || chunkSize % MIN_DIGEST_CHUNK !== 0) {
    throw new InvalidArgumentError(
      `raw builds carry a SHA-256 per frame-sized chunk: expected a frame size in [${MIN_DIGEST_CHUNK}, ${MAX_DIGEST_CHUNK}] and a multiple of ${MIN_DIGEST_CHUNK}, found ${chunkSize}`,
    )
  }
}
