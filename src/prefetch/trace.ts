/**
 * A build file's access trace: the order in which a reader first demanded the fetch units (frames of
 * a compressed layer, chunks of a raw one) of that file, and when, stored beside the build as
 * `{buildId}/{file}.prefetch` and replayed by the prefetcher on the next open.
 *
 * An entry names a unit by the virtual-file offset of the first byte demanded from it (a multiple of
 * 4 KiB), not by a frame number: the prefetcher resolves it through whatever header it reads with,
 * so a trace recorded under a pending header (one frame geometry) works under the final header (maybe
 * another) and across layers.
 *
 * Layout (little-endian):
 *   magic u32 "SSPF" · version u32 (1) · build id 16 bytes · kind u8 (0 memfile, 1 rootfs) · 3 zero
 *   bytes · virtual file size u64 · entry count u32 · reserved u32 (0)
 *   count × { page u32 (offset / 4096) · ms since open u32 }
 *   SHA-256 of everything before it (32 bytes)
 * The size is bounded before anything is allocated; a trace that does not parse, does not match its
 * checksum, or names another build, kind or file size is rejected with a FormatError or LimitError.
 */
import { createHash } from 'node:crypto'
import { FormatError, LimitError } from '../errors.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import { uuidFromBytes, uuidToBytes } from '../format/uuid.ts'

export const TRACE_MAGIC = 0x46505353 // "SSPF" read as little-endian u32
export const TRACE_VERSION = 1
export const TRACE_PAGE = 4096
const HEAD_BYTES = 48
const ENTRY_BYTES = 8
const SUM_BYTES = 32
/** Entries a trace may hold at most (a 2 MiB object); recorders stop earlier (prefetch.maxEntries). */
export const MAX_TRACE_ENTRIES = 262_144
export const MAX_TRACE_BYTES = HEAD_BYTES + MAX_TRACE_ENTRIES * ENTRY_BYTES + SUM_BYTES

export interface TraceEntry {
  /** Virtual-file offset of the first byte demanded from the unit (a multiple of TRACE_PAGE). */
  readonly offset: number
  /** Milliseconds between the file's open and that demand. */
  readonly ms: number
}

export interface AccessTrace {
  readonly buildId: BuildId
  readonly kind: FileKind
  readonly size: number
  readonly entries: readonly TraceEntry[]
}

export function encodeTrace(t: AccessTrace): Uint8Array {
  if (t.entries.length > MAX_TRACE_ENTRIES) throw new LimitError(`trace: ${t.entries.length} entries, expected at most ${MAX_TRACE_ENTRIES}`)
  const body = Buffer.alloc(HEAD_BYTES + t.entries.length * ENTRY_BYTES)
  body.writeUInt32LE(TRACE_MAGIC, 0)
  body.writeUInt32LE(TRACE_VERSION, 4)
  body.set(uuidToBytes(t.buildId), 8)
  body.writeUInt8(t.kind === 'memfile' ? 0 : 1, 24)
  body.writeBigUInt64LE(BigInt(t.size), 28)
  body.writeUInt32LE(t.entries.length, 36)
  t.entries.forEach((e, i) => {
    const at = HEAD_BYTES + i * ENTRY_BYTES
    body.writeUInt32LE(e.offset / TRACE_PAGE, at)
    body.writeUInt32LE(Math.min(0xffffffff, Math.max(0, Math.round(e.ms))), at + 4)
  })
  const sum = createHash('sha256').update(body).digest()
  return Buffer.concat([body, sum])
}

/** Parse a trace, every length bounded; `expect` (when given) must match what the trace names. */
export function decodeTrace(bytes: Uint8Array, expect?: { buildId: BuildId; kind: FileKind; size?: number }): AccessTrace {
  if (bytes.byteLength > MAX_TRACE_BYTES) throw new LimitError(`trace: ${bytes.byteLength} bytes, expected at most ${MAX_TRACE_BYTES}`)
  if (bytes.byteLength < HEAD_BYTES + SUM_BYTES) throw new FormatError(`trace: ${bytes.byteLength} bytes, expected at least ${HEAD_BYTES + SUM_BYTES}`)
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const magic = b.readUInt32LE(0)
  if (magic !== TRACE_MAGIC) throw new FormatError(`trace: magic 0x${magic.toString(16)}, expected 0x${TRACE_MAGIC.toString(16)}`)
  const version = b.readUInt32LE(4)
  if (version !== TRACE_VERSION) throw new FormatError(`trace: version ${version}, expected ${TRACE_VERSION}`)
  const count = b.readUInt32LE(36)
  if (count > MAX_TRACE_ENTRIES) throw new LimitError(`trace: ${count} entries, expected at most ${MAX_TRACE_ENTRIES}`)
  const want = HEAD_BYTES + count * ENTRY_BYTES + SUM_BYTES
  if (b.byteLength !== want) throw new FormatError(`trace: ${b.byteLength} bytes, expected ${want} for ${count} entries`)
  const bodyEnd = want - SUM_BYTES
  const sum = createHash('sha256').update(b.subarray(0, bodyEnd)).digest()
  if (!sum.equals(b.subarray(bodyEnd))) throw new FormatError('trace: SHA-256 does not match its contents')
  const kindByte = b.readUInt8(24)
  if (kindByte > 1) throw new FormatError(`trace: kind ${kindByte}, expected 0 (memfile) or 1 (rootfs)`)
  const size = b.readBigUInt64LE(28)
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`trace: file size ${size} is not a safe integer`)
  const t: AccessTrace = {
    buildId: uuidFromBytes(b.subarray(8, 24)),
    kind: kindByte === 0 ? 'memfile' : 'rootfs',
    size: Number(size),
    entries: readEntries(b, count, Number(size)),
  }
  if (expect && (t.buildId !== expect.buildId || t.kind !== expect.kind)) {
    throw new FormatError(`trace: names ${t.buildId}/${t.kind}, expected ${expect.buildId}/${expect.kind}`)
  }
  if (expect?.size !== undefined && t.size !== expect.size) throw new FormatError(`trace: file size ${t.size}, expected ${expect.size}`)
  return t
}

function readEntries(b: Buffer, count: number, size: number): TraceEntry[] {
  const entries: TraceEntry[] = []
  for (let i = 0; i < count; i++) {
    const at = HEAD_BYTES + i * ENTRY_BYTES
    const offset = b.readUInt32LE(at) * TRACE_PAGE
    if (offset >= size) throw new FormatError(`trace: entry ${i} at offset ${offset}, expected below the file size ${size}`)
    entries.push({ offset, ms: b.readUInt32LE(at + 4) })
  }
  return entries
}
