/**
 * The "have" message: what a node holds and is fetching of one build file, sent to its peers on the
 * `/snapswarm/have/1.0.0` protocol (src/p2p/content/have.ts). Two shapes:
 * - `full`: the whole state, two bitfields (held, in flight) over the file's frame table;
 * - `delta`: what changed since the last message: frames now held, frames now being fetched, frames
 *   no longer being fetched (arrived or given up).
 *
 * A file is named by its build id, kind and a table id: 8 bytes of the SHA-256 of its frame table
 * (codec and every frame's offsets), so two nodes compare frame indices only when they index the
 * same table (a pending header's table and a trimmed final one never mix).
 *
 * Encoding (all integers big-endian): version u8 (1), shape u8 (1 full, 2 delta), build id (16 raw
 * bytes), kind u8 (1 memfile, 2 rootfs), table id (8 bytes), frame count u32; then for `full` the
 * held and in-flight bitfields (bitfield.ts), each ceil(count / 8) bytes; for `delta` three counts
 * u32 (held, fetching, done) then that many u32 frame indices. Decoding checks every length and
 * count against MAX_HAVE_BYTES / MAX_HAVE_DELTA before allocating, every index against the frame
 * count, and the exact total size: anything else is a FormatError or LimitError.
 */
import { createHash } from 'node:crypto'
import { FormatError, LimitError } from '../errors.ts'
import type { FrameTable } from '../format/frame-table.ts'
import { MAX_FRAMES_PER_TABLE } from '../format/frame-table.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import { uuidFromBytes, uuidToBytes } from '../format/uuid.ts'
import { bitfieldBytes, checkFrameCount, FrameBitfield } from './bitfield.ts'

export const HAVE_VERSION = 1
/** Fixed part: version, shape, build id, kind, table id, frame count. */
const HEAD_BYTES = 1 + 1 + 16 + 1 + 8 + 4
/** Frame indices in one list of a delta: a sender with more changes sends a full message instead. */
export const MAX_HAVE_DELTA = 4096
/** The largest message: a full one over the largest table (two 128 KiB bitfields). */
export const MAX_HAVE_BYTES = HEAD_BYTES + 2 * bitfieldBytes(MAX_FRAMES_PER_TABLE)
export const TABLE_ID_BYTES = 8

/** One build file, as far as availability goes. `tableId` is hex (tableIdOf). */
export interface HaveFile {
  readonly buildId: BuildId
  readonly kind: FileKind
  readonly tableId: string
  readonly frameCount: number
}

export type HaveMessage =
  | (HaveFile & { readonly shape: 'full'; readonly held: FrameBitfield; readonly fetching: FrameBitfield })
  | (HaveFile & { readonly shape: 'delta'; readonly held: readonly number[]; readonly fetching: readonly number[]; readonly done: readonly number[] })

/** The table id of a frame table: 8 bytes of SHA-256 over its codec and frames, as hex. */
export function tableIdOf(table: FrameTable): string {
  const h = createHash('sha256').update(`${table.codec}\0${table.frames.length}\0`)
  const b = Buffer.alloc(16)
  for (const f of table.frames) {
    b.writeDoubleBE(f.startC, 0)
    b.writeDoubleBE(f.sizeC, 8)
    h.update(b)
  }
  return h.digest('hex').slice(0, TABLE_ID_BYTES * 2)
}

export function encodeHave(m: HaveMessage): Uint8Array {
  checkFrameCount(m.frameCount, 'have message')
  const body = m.shape === 'full' ? fullBody(m) : deltaBody(m)
  const out = Buffer.alloc(HEAD_BYTES + body.byteLength)
  out[0] = HAVE_VERSION
  out[1] = m.shape === 'full' ? 1 : 2
  out.set(uuidToBytes(m.buildId), 2)
  out[18] = m.kind === 'memfile' ? 1 : 2
  const tid = Buffer.from(m.tableId, 'hex')
  if (tid.byteLength !== TABLE_ID_BYTES) throw new FormatError(`table id of ${tid.byteLength} bytes, expected ${TABLE_ID_BYTES}`)
  out.set(tid, 19)
  out.writeUInt32BE(m.frameCount, 27)
  out.set(body, HEAD_BYTES)
  return out
}

function fullBody(m: Extract<HaveMessage, { shape: 'full' }>): Uint8Array {
  if (m.held.length !== m.frameCount || m.fetching.length !== m.frameCount) {
    throw new FormatError(`have message: bitfields of ${m.held.length} and ${m.fetching.length} frames, expected ${m.frameCount}`)
  }
  return Buffer.concat([m.held.toBytes(), m.fetching.toBytes()])
}

function deltaBody(m: Extract<HaveMessage, { shape: 'delta' }>): Uint8Array {
  const lists = [m.held, m.fetching, m.done]
  for (const l of lists) {
    if (l.length > MAX_HAVE_DELTA) throw new LimitError(`have delta: ${l.length} indices in one list, expected at most ${MAX_HAVE_DELTA}`)
    for (const i of l) if (!Number.isInteger(i) || i < 0 || i >= m.frameCount) throw new FormatError(`have delta: frame index ${i}, expected 0..${m.frameCount - 1}`)
  }
  const out = Buffer.alloc(12 + 4 * (m.held.length + m.fetching.length + m.done.length))
  let at = 0
  for (const l of lists) at = out.writeUInt32BE(l.length, at)
  for (const l of lists) for (const i of l) at = out.writeUInt32BE(i, at)
  return out
}

/** A peer's message, checked whole (see the file comment). */
export function decodeHave(bytes: Uint8Array): HaveMessage {
  if (bytes.byteLength > MAX_HAVE_BYTES) throw new LimitError(`have message of ${bytes.byteLength} bytes, expected at most ${MAX_HAVE_BYTES}`)
  if (bytes.byteLength < HEAD_BYTES) throw new FormatError(`have message of ${bytes.byteLength} bytes, expected at least ${HEAD_BYTES}`)
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (b[0] !== HAVE_VERSION) throw new FormatError(`have message version ${b[0]}, expected ${HAVE_VERSION}`)
  const shape = b[1] === 1 ? 'full' : b[1] === 2 ? 'delta' : undefined
  if (!shape) throw new FormatError(`have message shape ${b[1]}, expected 1 (full) or 2 (delta)`)
  const kind = b[18] === 1 ? 'memfile' : b[18] === 2 ? 'rootfs' : undefined
  if (!kind) throw new FormatError(`have message kind ${b[18]}, expected 1 (memfile) or 2 (rootfs)`)
  const frameCount = b.readUInt32BE(27)
  checkFrameCount(frameCount, 'have message')
  const file: HaveFile = { buildId: uuidFromBytes(b.subarray(2, 18)), kind, tableId: b.subarray(19, 27).toString('hex'), frameCount }
  const body = b.subarray(HEAD_BYTES)
  return shape === 'full' ? decodeFull(file, body) : decodeDelta(file, body)
}

function decodeFull(file: HaveFile, body: Buffer): HaveMessage {
  const n = bitfieldBytes(file.frameCount)
  if (body.byteLength !== 2 * n) throw new FormatError(`full have message of ${file.frameCount} frames: ${body.byteLength} bytes of bitfields, expected ${2 * n}`)
  return { ...file, shape: 'full', held: FrameBitfield.fromBytes(file.frameCount, body.subarray(0, n)), fetching: FrameBitfield.fromBytes(file.frameCount, body.subarray(n)) }
}

function decodeDelta(file: HaveFile, body: Buffer): HaveMessage {
  if (body.byteLength < 12) throw new FormatError(`have delta: ${body.byteLength} bytes, expected at least 12`)
  const counts = [body.readUInt32BE(0), body.readUInt32BE(4), body.readUInt32BE(8)]
  for (const c of counts) if (c > MAX_HAVE_DELTA) throw new LimitError(`have delta: ${c} indices in one list, expected at most ${MAX_HAVE_DELTA}`)
  const expected = 12 + 4 * (counts[0] + counts[1] + counts[2])
  if (body.byteLength !== expected) throw new FormatError(`have delta: ${body.byteLength} bytes, expected ${expected}`)
  let at = 12
  const lists = counts.map((c) => {
    const l: number[] = []
    for (let k = 0; k < c; k++, at += 4) {
      const i = body.readUInt32BE(at)
      if (i >= file.frameCount) throw new FormatError(`have delta: frame index ${i}, expected 0..${file.frameCount - 1}`)
      l.push(i)
    }
    return l
  })
  return { ...file, shape: 'delta', held: lists[0], fetching: lists[1], done: lists[2] }
}
