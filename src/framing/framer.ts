/**
 * The framing pipeline: read a data file in frame-sized buffers → SHA-256 of the
 * uncompressed stream → compress frames concurrently (bounded) → emit them in file order, so
 * compressed offsets follow the file.
 *
 * Three things run at once, so that the `workers` compression slots (libuv pool threads) never wait
 * for the main thread (the format bench: the old read → hash → compress → wait-for-oldest loop left a
 * slot idle ~25% of the time, 0.66× `zstd -3 -T2`; now 0.79×, bench/RESULTS.md):
 *  - the producer reads and hashes the next frame while `workers` frames compress;
 *  - a slot that frees is refilled at once from the ready frames, in the completion callback, not
 *    when the producer next looks;
 *  - the consumer hands finished frames to the sink in file order, without holding up the producer
 *    when a younger frame finishes before an older one.
 * Memory is bounded whatever the file size: `workers + 2` input buffers (reused) and at most
 * `2 × workers + 2` frames between read and emitted. Reads and writes share the libuv pool (4 threads
 * unless UV_THREADPOOL_SIZE says more) with the compressions: more than 2 workers needs a larger pool.
 *
 * With `zeroBlock`, all-zero blocks are dropped as they are read (holes.ts): each read fills the rest
 * of the current frame's buffer, its zero blocks are recorded as holes and the others moved down in
 * place, and reading goes on until the frame is full of stored bytes. Frames, the table and the
 * digests then cover only the stored bytes; no second pass over the input is made.
 */
import { createHash, type Hash } from 'node:crypto'
import type { FileHandle } from 'node:fs/promises'
import { ByteWriter } from '../format/bytes.ts'
import { getCodec } from '../format/codec.ts'
import { InvalidArgumentError } from '../errors.ts'
import { FrameTable } from '../format/frame-table.ts'
import type { ByteRange } from '../format/frame-table.ts'
import { checkDigestChunk, RawDigests, sha256Of } from '../format/raw-digests.ts'
import type { BuildInfo } from '../format/header.ts'
import type { BuildId, CodecName } from '../format/types.ts'
import { readExactly } from '../util/file-io.ts'
import { checkZeroBlock, dropZeroBlocks, HoleList } from './holes.ts'

export interface FramingOptions {
  readonly codec: CodecName
  readonly level?: number
  readonly frameSize: number
  /** Frames compressed concurrently (each on a libuv pool thread; the pool has 4 by default). */
  readonly workers: number
  readonly signal?: AbortSignal
  /** Drop all-zero blocks of this size as holes (zeroBlockFor); undefined stores every byte. */
  readonly zeroBlock?: number
  /** Called after each frame is emitted: uncompressed bytes read so far, compressed bytes emitted. */
  readonly onProgress?: (readU: number, emittedC: number) => void
}

/**
 * Receives each frame's stored bytes in file order; awaiting it is the pipeline's backpressure. The
 * sink may keep the bytes: they are never reused by the pipeline.
 */
export type FrameSink = (stored: Uint8Array, sizeU: number) => Promise<void>

export interface FramingResult {
  readonly table: FrameTable
  /** SHA-256 of the stored uncompressed bytes (the data file's content, what a header records). */
  readonly sha256: Uint8Array
  /** Bytes of input framed. */
  readonly size: number
  /** Uncompressed bytes stored: `size` minus the holes. */
  readonly storedSize: number
  /** SHA-256 of the whole input range, holes included (equal to `sha256` when there are none). */
  readonly sourceSha256: Uint8Array
  /** Input ranges of zero blocks that were left out, sorted and disjoint (empty without `zeroBlock`). */
  readonly holes: readonly ByteRange[]
  /** Raw (`none`) only: the SHA-256 of each frame-sized chunk, so readers can verify every chunk. */
  readonly digests?: RawDigests
}

/** A frame between read and emitted: `stored` settles when its compression does. */
interface Pending {
  readonly sizeU: number
  readonly stored: Promise<Uint8Array>
}

/** A read and hashed frame waiting for a compression slot. */
interface Ready {
  /** The frame's bytes: a view of `whole`, a reusable frame-sized input buffer. */
  readonly buf: Buffer
  readonly whole: Buffer
  readonly resolve: (stored: Uint8Array) => void
  readonly reject: (err: unknown) => void
}

/** One waiter, woken by whoever changes the state it waits on (no queue: a single waiter each). */
class Wakeup {
  private waiter: (() => void) | null = null
  wait(): Promise<void> {
    return new Promise((resolve) => {
      this.waiter = resolve
    })
  }
  notify(): void {
    const w = this.waiter
    this.waiter = null
    w?.()
  }
}

/**
 * Frame `length` bytes of `file` starting at `offset` (the whole file by default). A raw (`none`) file
 * is emitted in frame-sized chunks too, and gets a table with codec `none` the caller may drop.
 */
export async function frameFile(
  file: FileHandle,
  opts: FramingOptions,
  sink: FrameSink,
  range?: { offset: number; length: number },
): Promise<FramingResult> {
  if (!Number.isInteger(opts.frameSize) || opts.frameSize <= 0) {
    throw new InvalidArgumentError(`frame size must be a positive integer, found ${opts.frameSize}`)
  }
  if (opts.codec === 'none') checkDigestChunk(opts.frameSize)
  if (opts.zeroBlock !== undefined) checkZeroBlock(opts.zeroBlock, opts.frameSize)
  const start = range?.offset ?? 0
  const length = range?.length ?? (await file.stat()).size - start
  const pipeline = new FramePipeline(file, opts, sink)
  await pipeline.run(start, length)
  const table = FrameTable.fromSizes(opts.codec, pipeline.sizes)
  const digests = opts.codec === 'none' ? RawDigests.fromDigests(opts.frameSize, pipeline.chunkDigests.finish()) : undefined
  const sha256 = pipeline.hash.digest()
  const sourceSha256 = pipeline.sourceHash?.digest() ?? sha256
  const storedSize = length - pipeline.holes.bytes
  return { table, sha256, size: length, storedSize, sourceSha256, holes: pipeline.holes.ranges, ...(digests ? { digests } : {}) }
}

/** The BuildInfo of a framed data file (a raw one has no frame table, only its chunk digests). */
export function framedInfo(buildId: BuildId, codec: CodecName, framed: FramingResult): BuildInfo {
  const frames = codec === 'none' ? FrameTable.fromSizes('none', []) : framed.table
  return { buildId, fileSize: framed.storedSize, sha256: framed.sha256, frames, ...(framed.digests ? { digests: framed.digests } : {}) }
}

class FramePipeline {
  /** Over the stored bytes; `sourceHash` over every input byte, only when holes can be made. */
  readonly hash = createHash('sha256')
  readonly sourceHash: Hash | undefined
  readonly holes = new HoleList()
  readonly sizes: { sizeU: number; sizeC: number }[] = []
  /** Raw frames' own SHA-256, 32 bytes each, in one growing buffer (the count is bounded like a frame table). */
  readonly chunkDigests = new ByteWriter()
  private readonly file: FileHandle
  private readonly opts: FramingOptions
  private readonly sink: FrameSink
  private readonly workers: number
  private readonly maxBuffers: number
  private readonly maxPending: number
  private readonly compress: (src: Uint8Array) => Promise<Uint8Array>
  /** Input buffers free for the next read; `allocated` counts all of them. Raw frames are not reused. */
  private readonly free: Buffer[] = []
  private allocated = 0
  private readonly ready: Ready[] = []
  private readonly pending: Pending[] = []
  /** Every compression started and not settled: awaited before returning, even on error: nothing runs on after the caller moved on. */
  private readonly running = new Set<Promise<unknown>>()
  private readonly producerWake = new Wakeup()
  private readonly consumerWake = new Wakeup()
  private producing = true
  private failure: { err: unknown } | null = null
  private readU = 0
  private emittedC = 0

  constructor(file: FileHandle, opts: FramingOptions, sink: FrameSink) {
    this.file = file
    this.opts = opts
    this.sink = sink
    this.workers = Math.max(1, Math.floor(opts.workers))
    this.maxBuffers = this.workers + 2
    this.maxPending = 2 * this.workers + 2
    const codec = getCodec(opts.codec)
    this.compress = (src) => codec.compress(src, opts.level)
    this.sourceHash = opts.zeroBlock === undefined ? undefined : createHash('sha256')
  }

  async run(start: number, length: number): Promise<void> {
    const signal = this.opts.signal
    const onAbort = () => this.fail(signal?.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
    const consumer = this.consume()
    try {
      signal?.throwIfAborted()
      await this.produce(start, length)
    } catch (err) {
      this.fail(err)
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
    this.producing = false
    this.consumerWake.notify()
    await consumer
    // On error or abort, every in-flight compression finishes before we return (no
    // close racing with in-flight work); ready frames never started are dropped.
    await Promise.allSettled([...this.running])
    if (this.failure) throw this.failure.err
  }

  /**
   * Fill a frame buffer with stored bytes (reading more while holes leave room), then queue it. A
   * buffer that ends empty (only holes were read into it) goes back to the free list.
   */
  private async produce(start: number, length: number): Promise<void> {
    let frame: { whole: Buffer; fill: number } | null = null
    for (let pos = 0; pos < length && !this.failure; ) {
      if (frame === null) {
        while (!this.failure && (this.pending.length >= this.maxPending || !this.canTakeBuffer())) {
          await this.producerWake.wait()
        }
        if (this.failure) return
        const size = this.opts.codec === 'none' ? Math.min(this.opts.frameSize, length - pos) : Math.min(this.opts.frameSize, length)
        frame = { whole: this.takeBuffer(size), fill: 0 }
      }
      const n = Math.min(frame.whole.byteLength - frame.fill, length - pos)
      const chunk = frame.whole.subarray(frame.fill, frame.fill + n)
      await readFully(this.file, chunk, start + pos)
      frame.fill += this.keep(chunk, pos)
      pos += n
      this.readU += n
      if (frame.fill < frame.whole.byteLength && pos < length) continue
      if (frame.fill > 0) this.queue(frame.whole.subarray(0, frame.fill), frame.whole)
      else if (this.opts.codec !== 'none') this.free.push(frame.whole)
      frame = null
    }
  }

  /** Hashes a chunk just read and drops its zero blocks; returns the bytes kept at its start. */
  private keep(chunk: Buffer, pos: number): number {
    if (this.sourceHash === undefined) return chunk.byteLength
    this.sourceHash.update(chunk)
    return dropZeroBlocks(chunk, pos, this.opts.zeroBlock!, this.holes, true)
  }

  private queue(buf: Buffer, whole: Buffer): void {
    this.hash.update(buf)
    if (this.opts.codec === 'none') this.chunkDigests.bytes(sha256Of(buf))
    this.pending.push({ sizeU: buf.byteLength, stored: this.enqueue(buf, whole) })
    this.consumerWake.notify()
  }

  /** The frame's stored bytes, once a slot has compressed it. Raw frames are their own stored bytes. */
  private enqueue(buf: Buffer, whole: Buffer): Promise<Uint8Array> {
    if (this.opts.codec === 'none') return Promise.resolve(buf)
    const stored = new Promise<Uint8Array>((resolve, reject) => this.ready.push({ buf, whole, resolve, reject }))
    stored.catch(() => {}) // awaited by the consumer, or dropped after a failure: never unhandled
    this.dispatch()
    return stored
  }

  /** Start compressions while slots are free. Runs again from every completion. */
  private dispatch(): void {
    while (this.running.size < this.workers && this.ready.length > 0 && !this.failure) {
      const { buf, whole, resolve, reject } = this.ready.shift()!
      const job = this.compress(buf)
        .then(resolve, reject)
        .finally(() => {
          this.running.delete(job)
          this.free.push(whole)
          this.dispatch()
          this.producerWake.notify()
        })
      this.running.add(job)
    }
  }

  /** Emit frames in file order as their compressions finish. */
  private async consume(): Promise<void> {
    try {
      for (;;) {
        if (this.failure) return
        const head = this.pending[0]
        if (!head) {
          if (!this.producing) return
          await this.consumerWake.wait()
          continue
        }
        const stored = await head.stored
        if (this.failure) return
        await this.sink(stored, head.sizeU)
        this.pending.shift()
        this.producerWake.notify()
        this.sizes.push({ sizeU: head.sizeU, sizeC: stored.byteLength })
        this.emittedC += stored.byteLength
        this.opts.onProgress?.(this.readU, this.emittedC)
      }
    } catch (err) {
      this.fail(err)
    }
  }

  private fail(err: unknown): void {
    this.failure ??= { err }
    this.producerWake.notify()
    this.consumerWake.notify()
  }

  private canTakeBuffer(): boolean {
    return this.opts.codec === 'none' || this.free.length > 0 || this.allocated < this.maxBuffers
  }

  /** An input buffer of `size` bytes: a free one, or a new one (raw frames go to the sink: always new). */
  private takeBuffer(size: number): Buffer {
    if (this.opts.codec === 'none') return Buffer.allocUnsafe(size)
    const reused = this.free.pop()
    if (reused) return reused
    this.allocated++
    return Buffer.allocUnsafeSlow(size)
  }
}

function readFully(file: FileHandle, buf: Buffer, position: number): Promise<void> {
  return readExactly(file, buf, position, (done) => new InvalidArgumentError(`file ended at ${position + done}, expected ${buf.byteLength - done} more bytes`))
}
