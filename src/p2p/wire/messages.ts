/**
 * Translation between the generated wire types (protocols/snapswarm.proto) and the project's
 * vocabulary (src/format/types.ts): build ids as 16 raw bytes, kinds and states as enums. Everything
 * decoded here is validated (sizes, counts, enum zero values) so the protocol code gets clean values.
 *
 * The generated module is plain JS + .d.ts because Node's type stripping cannot run protons' enums and
 * namespaces (see the `protos` npm script).
 */

import { Announce, BuildState, FrameCodec, FramesResponse, GetFrames, Kind, Status } from '../../../protocols/snapswarm.js'
import type { AnnouncedState, BuildId, CodecName, FileKind } from '../../format/types.ts'
import { MAX_ANNOUNCE_ENTRIES, MAX_BATCH_FRAMES, MAX_FRAME_BYTES } from '../constants.ts'
import { PeerProtocolError } from '../errors.ts'

/** Answers as data; the names are the wire enum's names. */
export type PeerStatus = 'OK' | 'NOT_AVAILABLE' | 'USE_STORAGE' | 'UPLOAD_FAILED' | 'BUSY'
export type NotOk = Exclude<PeerStatus, 'OK'>

/**
 * What a node announces about a build: it can serve it (`pending`, `uploaded`, `cached`),
 * or it originated it and the upload failed (`failed`: the build will never be in storage; readers
 * give up at once instead of waiting for a switchover that cannot come).
 */
export type { AnnouncedState } from '../../format/types.ts'

export interface BuildAnnouncement {
  buildId: BuildId
  state: AnnouncedState
  /** Uncompressed virtual sizes; 0 = unknown. */
  memfileSize: number
  rootfsSize: number
}

export function statusFromWire(s: Status, what: string): PeerStatus {
  if (s === Status.STATUS_UNSPECIFIED) throw new PeerProtocolError(`${what}: response without a status`)
  return s as PeerStatus
}

export function statusToWire(s: PeerStatus): Status {
  return s as Status
}

export function kindToWire(kind: FileKind): Kind {
  return kind === 'memfile' ? Kind.MEMFILE : Kind.ROOTFS
}

export function kindFromWire(kind: Kind): FileKind {
  if (kind === Kind.MEMFILE) return 'memfile'
  if (kind === Kind.ROOTFS) return 'rootfs'
  throw new PeerProtocolError(`request without a valid file kind (got ${kind})`)
}

const STATE_TO_WIRE: Record<AnnouncedState, BuildState> = {
  pending: BuildState.PENDING,
  uploaded: BuildState.UPLOADED,
  cached: BuildState.CACHED,
  failed: BuildState.FAILED,
}

export function stateFromWire(s: BuildState): AnnouncedState {
  if (s === BuildState.PENDING) return 'pending'
  if (s === BuildState.UPLOADED) return 'uploaded'
  if (s === BuildState.CACHED) return 'cached'
  if (s === BuildState.FAILED) return 'failed'
  throw new PeerProtocolError(`announcement without a valid build state (got ${s})`)
}

const CODEC_TO_WIRE: Record<CodecName, FrameCodec> = { none: FrameCodec.CODEC_NONE, zstd: FrameCodec.CODEC_ZSTD, lz4: FrameCodec.CODEC_LZ4 }

export function codecToWire(codec: CodecName): FrameCodec {
  const w = CODEC_TO_WIRE[codec]
  if (w === undefined) throw new PeerProtocolError(`unknown codec '${codec}'`)
  return w
}

/** undefined = the client did not say (a client from before the field existed). */
export function codecFromWire(c: FrameCodec): CodecName | undefined {
  if (c === FrameCodec.CODEC_NONE) return 'none'
  if (c === FrameCodec.CODEC_ZSTD) return 'zstd'
  if (c === FrameCodec.CODEC_LZ4) return 'lz4'
  return undefined
}

// Build ids on the wire: the same bytes as format/uuid.ts's uuidToBytes / uuidFromBytes, but a bad id
// is a PeerProtocolError (the peer broke the protocol), not a format error.
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export function buildIdToWire(id: BuildId): Uint8Array<ArrayBuffer> {
  if (!UUID_RE.test(id)) throw new PeerProtocolError(`not a canonical build id: '${id}'`)
  return Uint8Array.from(Buffer.from(id.replaceAll('-', ''), 'hex'))
}

export function buildIdFromWire(b: Uint8Array): BuildId {
  if (b.byteLength !== 16) throw new PeerProtocolError(`build id of ${b.byteLength} bytes, expected 16`)
  const h = Buffer.from(b.buffer, b.byteOffset, 16).toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

// Decoders with the repeated-field limits applied inside protons, so a hostile count fails mid-parse.
export function decodeGetFrames(buf: Uint8Array): GetFrames {
  return GetFrames.decode(buf, { limits: { frames: MAX_BATCH_FRAMES } })
}

export function decodeFramesResponse(buf: Uint8Array): FramesResponse {
  return FramesResponse.decode(buf, { limits: { lengths: MAX_BATCH_FRAMES } })
}

export function decodeAnnounce(buf: Uint8Array): Announce {
  return Announce.decode(buf, { limits: { builds: MAX_ANNOUNCE_ENTRIES } })
}

export function announcementToWire(a: BuildAnnouncement): Announce['builds'][number] {
  return {
    buildId: buildIdToWire(a.buildId),
    state: STATE_TO_WIRE[a.state],
    memfileSize: a.memfileSize,
    rootfsSize: a.rootfsSize,
  }
}

export function announcementFromWire(w: Announce['builds'][number]): BuildAnnouncement {
  const sizes = [w.memfileSize, w.rootfsSize]
  if (!sizes.every((n) => Number.isSafeInteger(n) && n >= 0)) throw new PeerProtocolError('announcement with an invalid file size')
  return { buildId: buildIdFromWire(w.buildId), state: stateFromWire(w.state), memfileSize: w.memfileSize, rootfsSize: w.rootfsSize }
}

export { Announce, BlobResponse, FramesResponse, GetBlob, GetFrames, GetHeader, HeaderResponse } from '../../../protocols/snapswarm.js'

/** Why a batch of frame ranges is unacceptable, or undefined if it is fine. Both ends apply the same limits. */
export function batchProblem(ranges: readonly { startC: number; sizeC: number }[], maxBatchBytes: number): string | undefined {
  if (ranges.length === 0 || ranges.length > MAX_BATCH_FRAMES) return `${ranges.length} frames in a batch, expected 1..${MAX_BATCH_FRAMES}`
  let total = 0
  for (const [i, r] of ranges.entries()) {
    if (!Number.isSafeInteger(r.startC) || r.startC < 0) return `frame ${i}: startC ${r.startC} is not a valid offset`
    if (!Number.isInteger(r.sizeC) || r.sizeC <= 0 || r.sizeC > MAX_FRAME_BYTES) return `frame ${i}: sizeC ${r.sizeC}, expected 1..${MAX_FRAME_BYTES}`
    total += r.sizeC
  }
  return total > maxBatchBytes ? `batch of ${total} bytes, more than the ${maxBatchBytes} allowed` : undefined
}
