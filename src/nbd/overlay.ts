/**
 * A copy-on-write overlay over one build file: writes land in a sparse local file of the build's
 * size, and a map says, per 4 KiB block, whether the block is the build's (clean), the overlay's
 * (data) or zeros (written as zeros or trimmed). Reads merge the two; the build is never written.
 *
 * Durability: `flush()` fsyncs the data file, then writes the map to a temporary file, fsyncs it and
 * renames it over the old map (then fsyncs the directory), so a crash leaves either the old or the
 * new map, never half of one. The map carries its own SHA-256: a damaged map is refused at open.
 * Writes between two flushes may be lost in a crash, as on any disk without FUA.
 */
import { createHash } from 'node:crypto'
import { constants } from 'node:fs'
import { type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { FormatError, InvalidArgumentError } from '../errors.ts'
import type { BuildId, FileKind } from '../format/types.ts'

export const OVERLAY_BLOCK = 4096
const MAP_MAGIC = 'SSOVMAP1'
const MAP_VERSION = 1
const MAP_HEADER_BYTES = 8 + 4 + 4 + 8 + 36 + 1 + 4
const RUN_BYTES = 17
/** A block's state in the map. */
export const CLEAN = 0
export const DATA = 1
export const ZERO = 2

/** How the overlay reads bytes of the build under it. */
export type BaseRead = (dst: Buffer, offset: number) => Promise<void>

export interface OverlayRun {
  readonly start: number
  readonly end: number
  readonly state: typeof DATA | typeof ZERO
}

export interface OverlayIdentity {
  readonly buildId: BuildId
  readonly kind: FileKind
  readonly size: number
}

export class Overlay {
  readonly dir: string
  readonly identity: OverlayIdentity
  private readonly fh: FileHandle
  private readonly states: Uint8Array
  /** Writes, zeroing and flushes run one after another: partial blocks are read-modify-written. */
  private chain: Promise<unknown> = Promise.resolve()
  private dirtyBlocks = 0
  private closed = false

  private constructor(dir: string, identity: OverlayIdentity, fh: FileHandle, states: Uint8Array) {
    this.dir = dir
    this.identity = identity
    this.fh = fh
    this.states = states
    for (const s of states) if (s !== CLEAN) this.dirtyBlocks++
  }

  /** Open the overlay in `dir` (created if absent); an existing one must be over the same build file. */
  static async open(dir: string, identity: OverlayIdentity): Promise<Overlay> {
    const blocks = Math.ceil(identity.size / OVERLAY_BLOCK)
    await mkdir(dir, { recursive: true })
    const states = (await readMap(join(dir, 'map'), identity, blocks)) ?? new Uint8Array(blocks)
    const fh = await open(join(dir, 'data'), constants.O_RDWR | constants.O_CREAT, 0o600)
    try {
      await fh.truncate(identity.size)
    } catch (err) {
      await fh.close()
      throw err
    }
    return new Overlay(dir, identity, fh, states)
  }

  get size(): number {
    return this.identity.size
  }

  /** Bytes in blocks the overlay holds (data or zeros). */
  get dirtyBytes(): number {
    return this.dirtyBlocks * OVERLAY_BLOCK
  }

  stateAt(offset: number): number {
    return this.states[Math.floor(offset / OVERLAY_BLOCK)]
  }

  /** The length from `offset` (block-aligned runs) over which the state stays `stateAt(offset)`, at most `max`. */
  runLength(offset: number, max: number): number {
    const first = Math.floor(offset / OVERLAY_BLOCK)
    const s = this.states[first]
    let b = first + 1
    const lastBlock = Math.ceil(Math.min(this.size, offset + max) / OVERLAY_BLOCK)
    while (b < lastBlock && this.states[b] === s) b++
    return Math.min(b * OVERLAY_BLOCK, this.size, offset + max) - offset
  }

  /** Every block the overlay holds, as sorted runs of one state. */
  runs(): OverlayRun[] {
    const out: OverlayRun[] = []
    const n = this.states.length
    for (let b = 0; b < n; ) {
      const s = this.states[b]
      let e = b + 1
      while (e < n && this.states[e] === s) e++
      if (s !== CLEAN) out.push({ start: b * OVERLAY_BLOCK, end: Math.min(e * OVERLAY_BLOCK, this.size), state: s as OverlayRun['state'] })
      b = e
    }
    return out
  }

  /** Fill `dst` with the merged bytes at `offset`: overlay blocks from the overlay, the rest from the build. */
  async readInto(dst: Buffer, offset: number, base: BaseRead): Promise<void> {
    this.checkRange(offset, dst.byteLength)
    const reads: Promise<unknown>[] = []
    for (let pos = 0; pos < dst.byteLength; ) {
      const at = offset + pos
      const len = this.runLength(at, dst.byteLength - pos)
      const part = dst.subarray(pos, pos + len)
      const s = this.stateAt(at)
      if (s === ZERO) part.fill(0)
      else if (s === DATA) reads.push(readFully(this.fh, part, at))
      else reads.push(base(part, at))
      pos += len
    }
    await Promise.all(reads)
  }

  async write(src: Buffer, offset: number, base: BaseRead): Promise<void> {
    this.checkRange(offset, src.byteLength)
    await this.serial(() => this.writeLocked(src, offset, base))
  }

  /** Zeros over the range (WRITE_ZEROES, TRIM): whole blocks become zero blocks, partial ones are written. */
  async zero(offset: number, length: number, base: BaseRead): Promise<void> {
    this.checkRange(offset, length)
    await this.serial(async () => {
      const end = offset + length
      const firstWhole = Math.ceil(offset / OVERLAY_BLOCK) * OVERLAY_BLOCK
      const lastWhole = end === this.size ? end : Math.floor(end / OVERLAY_BLOCK) * OVERLAY_BLOCK
      if (firstWhole >= lastWhole) return this.writeLocked(Buffer.alloc(length), offset, base)
      if (offset < firstWhole) await this.writeLocked(Buffer.alloc(firstWhole - offset), offset, base)
      for (let b = firstWhole / OVERLAY_BLOCK; b < Math.ceil(lastWhole / OVERLAY_BLOCK); b++) this.setState(b, ZERO)
      if (lastWhole < end) await this.writeLocked(Buffer.alloc(end - lastWhole), lastWhole, base)
    })
  }

  /** Make every write so far durable: data first, then the map (atomically). */
  async flush(): Promise<void> {
    await this.serial(async () => {
      await this.fh.sync()
      await writeMap(this.dir, this.identity, this.runs())
    })
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.chain.catch(() => {})
    await this.fh.close()
  }

  /** Remove the overlay's files (after close). */
  static async discard(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true })
  }

  private checkRange(offset: number, length: number): void {
    if (!(Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(length) && length >= 0 && offset + length <= this.size)) {
      throw new InvalidArgumentError(`expected a range inside the overlay's ${this.size} bytes, found ${offset}+${length}`)
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn)
    this.chain = run.catch(() => {})
    return run
  }

  /** Partial blocks at either end are completed from the merged view first, so a data block is always whole. */
  private async writeLocked(src: Buffer, offset: number, base: BaseRead): Promise<void> {
    if (src.byteLength === 0) return
    const start = Math.floor(offset / OVERLAY_BLOCK) * OVERLAY_BLOCK
    const end = Math.min(Math.ceil((offset + src.byteLength) / OVERLAY_BLOCK) * OVERLAY_BLOCK, this.size)
    let buf = src
    if (start !== offset || end !== offset + src.byteLength) {
      buf = Buffer.allocUnsafe(end - start)
      // The head and tail blocks as they read now; the new bytes go over them.
      if (start !== offset) await this.readInto(buf.subarray(0, Math.min(OVERLAY_BLOCK, buf.byteLength)), start, base)
      const tail = Math.floor((end - 1) / OVERLAY_BLOCK) * OVERLAY_BLOCK
      if (end !== offset + src.byteLength && (tail > start || start === offset)) await this.readInto(buf.subarray(tail - start), tail, base)
      src.copy(buf, offset - start)
    }
    await writeFully(this.fh, buf, start)
    for (let b = start / OVERLAY_BLOCK; b < Math.ceil(end / OVERLAY_BLOCK); b++) this.setState(b, DATA)
  }

  private setState(block: number, s: number): void {
    const was = this.states[block]
    if (was === s) return
    if (was === CLEAN) this.dirtyBlocks++
    else if (s === CLEAN) this.dirtyBlocks--
    this.states[block] = s
  }
}

async function readFully(fh: FileHandle, dst: Buffer, position: number): Promise<void> {
  for (let done = 0; done < dst.byteLength; ) {
    const { bytesRead } = await fh.read(dst, done, dst.byteLength - done, position + done)
    if (bytesRead === 0) throw new FormatError(`overlay data file ended at ${position + done}, expected ${dst.byteLength - done} more bytes`)
    done += bytesRead
  }
}

async function writeFully(fh: FileHandle, src: Buffer, position: number): Promise<void> {
  for (let done = 0; done < src.byteLength; ) {
    const { bytesWritten } = await fh.write(src, done, src.byteLength - done, position + done)
    done += bytesWritten
  }
}

/** magic · version u32 · block u32 · size u64 · build id (36 chars) · kind u8 · runs u32 · runs × {start block u64, blocks u64, state u8} · SHA-256. */
function encodeMap(identity: OverlayIdentity, runs: OverlayRun[]): Buffer {
  const b = Buffer.alloc(MAP_HEADER_BYTES + runs.length * RUN_BYTES + 32)
  b.write(MAP_MAGIC, 0, 'latin1')
  b.writeUInt32BE(MAP_VERSION, 8)
  b.writeUInt32BE(OVERLAY_BLOCK, 12)
  b.writeBigUInt64BE(BigInt(identity.size), 16)
  b.write(identity.buildId, 24, 36, 'latin1')
  b.writeUInt8(identity.kind === 'memfile' ? 0 : 1, 60)
  b.writeUInt32BE(runs.length, 61)
  let pos = MAP_HEADER_BYTES
  for (const r of runs) {
    b.writeBigUInt64BE(BigInt(r.start / OVERLAY_BLOCK), pos)
    b.writeBigUInt64BE(BigInt(Math.ceil((r.end - r.start) / OVERLAY_BLOCK)), pos + 8)
    b.writeUInt8(r.state, pos + 16)
    pos += RUN_BYTES
  }
  createHash('sha256').update(b.subarray(0, pos)).digest().copy(b, pos)
  return b
}

async function writeMap(dir: string, identity: OverlayIdentity, runs: OverlayRun[]): Promise<void> {
  const tmp = join(dir, 'map.tmp')
  const fh = await open(tmp, 'w')
  try {
    await writeFully(fh, encodeMap(identity, runs), 0)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, join(dir, 'map'))
  const d = await open(dir, 'r')
  try {
    await d.sync()
  } finally {
    await d.close()
  }
}

/** The block states of a saved map, or null when there is none; a damaged or foreign map is an error. */
async function readMap(path: string, identity: OverlayIdentity, blocks: number): Promise<Uint8Array | null> {
  let fh: FileHandle
  try {
    fh = await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  try {
    const { size } = await fh.stat()
    const maxBytes = MAP_HEADER_BYTES + blocks * RUN_BYTES + 32
    if (size < MAP_HEADER_BYTES + 32 || size > maxBytes) throw new FormatError(`overlay map ${path}: expected ${MAP_HEADER_BYTES + 32} to ${maxBytes} bytes, found ${size}`)
    const b = Buffer.allocUnsafe(size)
    await readFully(fh, b, 0)
    return decodeMap(b, path, identity, blocks)
  } finally {
    await fh.close()
  }
}

function decodeMap(b: Buffer, path: string, identity: OverlayIdentity, blocks: number): Uint8Array {
  const body = b.subarray(0, b.byteLength - 32)
  if (!createHash('sha256').update(body).digest().equals(b.subarray(b.byteLength - 32))) throw new FormatError(`overlay map ${path}: its checksum does not match its bytes (damaged)`)
  if (b.toString('latin1', 0, 8) !== MAP_MAGIC || b.readUInt32BE(8) !== MAP_VERSION || b.readUInt32BE(12) !== OVERLAY_BLOCK) {
    throw new FormatError(`overlay map ${path}: expected ${MAP_MAGIC} version ${MAP_VERSION} with ${OVERLAY_BLOCK}-byte blocks`)
  }
  const size = Number(b.readBigUInt64BE(16))
  const buildId = b.toString('latin1', 24, 60)
  const kind = b.readUInt8(60) === 0 ? 'memfile' : 'rootfs'
  if (size !== identity.size || buildId !== identity.buildId || kind !== identity.kind) {
    throw new InvalidArgumentError(`overlay ${path}: it is over ${buildId}/${kind} (${size} bytes), not ${identity.buildId}/${identity.kind} (${identity.size} bytes)`)
  }
  const count = b.readUInt32BE(61)
  if (MAP_HEADER_BYTES + count * RUN_BYTES !== body.byteLength) throw new FormatError(`overlay map ${path}: ${count} runs do not fill its ${body.byteLength} bytes`)
  const states = new Uint8Array(blocks)
  let prev = 0
  for (let i = 0, pos = MAP_HEADER_BYTES; i < count; i++, pos += RUN_BYTES) {
    const start = Number(b.readBigUInt64BE(pos))
    const n = Number(b.readBigUInt64BE(pos + 8))
    const s = b.readUInt8(pos + 16)
    if (start < prev || n === 0 || start + n > blocks || (s !== DATA && s !== ZERO)) throw new FormatError(`overlay map ${path}: run ${i} (${start}+${n}, state ${s}) is out of order, empty, outside ${blocks} blocks or of an unknown state`)
    states.fill(s, start, start + n)
    prev = start + n
  }
  return states
}
