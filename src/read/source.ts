/**
 * One source interface for every place a frame can come from (fallbacks as code): peers, the shared frame cache and object storage all answer `fetch(ref)` with the
 * stored bytes of one frame, or `null` for "not here". Bytes from a source are never trusted: the
 * fetcher verifies them in one place (verify.ts) before they are used or cached.
 */
import { dataObjectName } from '../format/layout.ts'
import type { BuildId, CodecName, FileKind } from '../format/types.ts'
import { NotFoundError, type ObjectStore } from '../storage/store.ts'

/**
 * One fetch unit of a data file: a frame of a compressed build, or an aligned chunk of a raw build
 * (codec `none`, `startC = startU`, `sizeC = sizeU`). Offsets are absolute in that build's data file.
 */
export interface FrameRef {
  buildId: BuildId
  kind: FileKind
  codec: CodecName
  startU: number
  sizeU: number
  startC: number
  sizeC: number
  /**
   * The SHA-256 the uncompressed bytes must have, when the header carries one for this unit (a raw
   * build's chunk digest): checked before the bytes are used. Sources ignore it.
   */
  digest?: Uint8Array
  /**
   * The content the header promises for this layer (the chunk cache's content key, cache-key.ts): a
   * store that keeps frames across headers keeps those of different contents apart by it, so a header
   * that promises other content for the same build id is never served the old frames. Sources ignore it.
   */
  content?: string
  /** Fetched ahead by the prefetcher, not for a waiting reader: a source may keep it apart from reads. */
  prefetch?: boolean
}

export interface FrameSource {
  readonly name: string
  /**
   * Ask this source once more after bytes it returned failed verification, before moving on: for a
   * source that answers differently after a penalty (the peer source excludes the peer it blamed).
   */
  readonly retryAfterPenalty?: boolean
  /** The stored bytes of `ref` (compressed, or raw for codec `none`), unverified; `null` = "not here". */
  fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null>
  /** A cache: keep these VERIFIED stored bytes another source produced (in the background, never blocking). */
  offer?(ref: FrameRef, verified: Uint8Array): void
  /** A cache: drop the entry whose bytes just failed verification, so the next reader refetches it. */
  remove?(ref: FrameRef): Promise<void>
  /**
   * How long the fetcher waits for this source before starting the next one beside it, for `ref`
   * (undefined: the fetcher's hedge delay). The peer source asks for longer when a swarm peer is
   * fetching the frame for this node: a hedge then would fetch the same frame twice.
   */
  hedgeAfterMs?(ref: FrameRef): number | undefined
  /** A view of another source of the chain (a cache): bytes this one returns are already kept there. */
  readonly viewOf?: FrameSource
}

/** Object storage (GCS or a directory): one ranged read per frame, at its compressed offset. */
export class StorageSource implements FrameSource {
  readonly name = 'storage'
  private readonly store: ObjectStore

  constructor(store: ObjectStore) {
    this.store = store
  }

  async fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null> {
    // A truncated object is an ObjectRangeError naming the range and the size found (a clear error,
    // not a hang); a missing one is the ordinary "not here".
    try {
      return await this.store.getRange(dataObjectName(ref.buildId, ref.kind, ref.codec), ref.startC, ref.sizeC, signal)
    } catch (err) {
      if (err instanceof NotFoundError) return null
      throw err
    }
  }
}
