/**
 * Content protocols (DESIGN §8): get a header, get the compressed bytes of a batch of frames, get a
 * blob. The serving side asks a `PeerContentProvider` (implemented by the daemon over its local
 * builds and caches); the fetching side is `PeerClient`. Answers carry a status as data.
 */
import type { BuildId, CodecName, FileKind } from '../../format/types.ts'
import type { NotOk } from '../wire/messages.ts'

export type { NotOk, PeerStatus } from '../wire/messages.ts'

/** One frame of a data file, by its compressed range (the frame table's `startC`, `sizeC`). */
export interface FrameRange {
  startC: number
  sizeC: number
}

export type HeaderAnswer = { status: 'OK'; header: Uint8Array; pending: boolean } | { status: NotOk }

/**
 * A batch the provider agreed to serve. The server pulls one frame at a time and sends it with
 * backpressure before asking for the next, so a batch is never held in memory whole; `frame(i)` must
 * return exactly `ranges[i].sizeC` bytes (the server resets the stream otherwise).
 */
export interface FrameBatch {
  frame(index: number, signal: AbortSignal): Promise<Uint8Array>
  /** Called once when the batch ends, served or not (release file handles, pins). */
  release?(): void
}

export type FramesAnswer = { status: 'OK'; batch: FrameBatch } | { status: NotOk }

export type BlobAnswer = { status: 'OK'; bytes: Uint8Array } | { status: NotOk }

export interface PeerContentProvider {
  /** `pending` = the upload still runs: the header must carry the incomplete flag (DESIGN §4). */
  getHeader(buildId: BuildId, kind: FileKind, signal: AbortSignal): Promise<HeaderAnswer>
  /**
   * The compressed bytes of `ranges` of the `codec` copy of a data file. A range names a frame only
   * together with its codec (a raw range can coincide with a zstd frame of another geometry): answer
   * NOT_AVAILABLE unless the copy held has this codec. `codec` undefined = the client did not say
   * (a client from before the field existed); match the ranges alone, as before.
   */
  getFrames(buildId: BuildId, kind: FileKind, codec: CodecName | undefined, ranges: readonly FrameRange[], signal: AbortSignal): Promise<FramesAnswer>
  getBlob(buildId: BuildId, name: string, signal: AbortSignal): Promise<BlobAnswer>
}

/** Per-request options of `PeerClient`; every field has a default (constants.ts). */
export interface RequestOptions {
  signal?: AbortSignal
  /** Whole-request deadline. */
  timeoutMs?: number
  /** Fail when the peer sends nothing for this long. */
  stallMs?: number
}

export type HeaderResult = HeaderAnswer
export type FramesResult = { status: 'OK'; frames: Uint8Array[] } | { status: NotOk }
export type BlobResult = BlobAnswer

export { PeerClient, type PeerClientOptions } from './client.ts'
export { ContentServer, type ContentServerOptions } from './server.ts'
