/**
 * The shapes of the content protocols (get a header, the compressed bytes of a batch of frames, a
 * blob), shared by the client and the server so neither imports the folder's index.
 */
import type { BuildId, CodecName, FileKind } from '../../format/types.ts'
import type { NotOk } from '../wire/messages.ts'

export type { NotOk, PeerStatus } from '../wire/messages.ts'

/**
 * Frames on the relay protocol: the same GetFrames request and answer as PROTOCOL_FRAMES, served
 * with FramesServeOptions.relay (the answer may wait for the frame or have it fetched once).
 */
export const PROTOCOL_FRAMES_RELAY = '/snapswarm/frames-relay/1.0.0'

/** One frame of a data file, by its compressed range (the frame table's `startC`, `sizeC`). */
export interface FrameRange {
  startC: number
  sizeC: number
}

/**
 * A stored frame sent with a header (`HeaderOptions.firstReadAt`): its range in the build's data file,
 * as the header's frame table names it, and its bytes (unverified, like every peer's bytes).
 */
export interface FrameWithHeader {
  readonly startC: number
  readonly sizeC: number
  readonly bytes: Uint8Array
}

export type HeaderAnswer = { status: 'OK'; header: Uint8Array; pending: boolean; frame?: FrameWithHeader } | { status: NotOk }

/** What a header request may add: the file offset of the first read, whose frame may come with the header. */
export interface HeaderOptions {
  readonly firstReadAt?: number
}

/**
 * A batch the provider agreed to serve. The server asks for frame i+1 while it sends frame i with
 * backpressure (the read overlaps the wire), so at most two frames of a batch are held at once, never
 * the whole batch; `frame(i)` must return exactly `ranges[i].sizeC` bytes (the server resets the
 * stream otherwise). `release` is called after the last `frame` call has settled.
 */
export interface FrameBatch {
  frame(index: number, signal: AbortSignal): Promise<Uint8Array>
  /** Called once when the batch ends, served or not (release file handles, pins). */
  release?(): void
}

export type FramesAnswer = { status: 'OK'; batch: FrameBatch } | { status: NotOk }

export type BlobAnswer = { status: 'OK'; bytes: Uint8Array } | { status: NotOk }

export interface PeerContentProvider {
  /**
   * `pending` = the upload still runs: the header must carry the incomplete flag (docs/FORMAT.md).
   * With `opts.firstReadAt`, a provider that holds the frame of its own data file that serves that
   * offset may add it (`frame`); it is optional, and never a frame of another build or geometry.
   */
  getHeader(buildId: BuildId, kind: FileKind, signal: AbortSignal, opts?: HeaderOptions): Promise<HeaderAnswer>
  /**
   * The compressed bytes of `ranges` of the `codec` copy of a data file. A range names a frame only
   * together with its codec (a raw range can coincide with a zstd frame of another geometry): answer
   * NOT_AVAILABLE unless the copy held has this codec. `codec` undefined = the client did not say
   * (a client from before the field existed); match the ranges alone, as before.
   */
  getFrames(buildId: BuildId, kind: FileKind, codec: CodecName | undefined, ranges: readonly FrameRange[], signal: AbortSignal, opts?: FramesServeOptions): Promise<FramesAnswer>
  getBlob(buildId: BuildId, name: string, signal: AbortSignal): Promise<BlobAnswer>
}

/**
 * How a frames request arrived. `relay`: on the relay protocol (PROTOCOL_FRAMES_RELAY): a reader
 * of the same build asks this node for frames it holds, is fetching, or is responsible for in the
 * swarm (src/swarm/select.ts): the answer may wait, within the request's deadline, for the frame to
 * arrive here, or make this node fetch it once for every reader.
 */
export interface FramesServeOptions {
  readonly relay?: boolean
}

/** Per-request options of `PeerClient`; every field has a default (constants.ts). */
export interface RequestOptions {
  signal?: AbortSignal
  /** Whole-request deadline. */
  timeoutMs?: number
  /** Fail when the peer sends nothing for this long. */
  stallMs?: number
}

export interface FramesRequestOptions extends RequestOptions {
  /**
   * Called with each frame as soon as its bytes are in, before the rest of the batch: a reader can
   * verify and use frame 0 while frames 1..n are on the wire. A frame is only ever handed over whole
   * (exactly the length announced); a later failure of the batch rejects the call as usual.
   */
  onFrame?: (index: number, bytes: Uint8Array) => void
  /** Ask on the relay protocol (FramesServeOptions): the peer may wait for the frame or fetch it for us. */
  relay?: boolean
}

export interface HeaderRequestOptions extends RequestOptions, HeaderOptions {}

export type HeaderResult = HeaderAnswer
export type FramesResult = { status: 'OK'; frames: Uint8Array[] } | { status: NotOk }
export type BlobResult = BlobAnswer
