/**
 * Fakes of the narrow interfaces the switchover uses (a reader per header, the final header from
 * storage): in memory, counting what was asked of them, so ResumedFile and OpenFiles are tested
 * without a node, peers or storage. Every byte a fake reader returns is the source's, so a test can
 * compare what a read returned with the source.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { FrameTable } from '../../src/format/frame-table.ts'
import type { Header } from '../../src/format/header.ts'
import { singleLayerHeader } from '../../src/format/mapping.ts'
import type { BuildId, CodecName } from '../../src/format/types.ts'
import type { BuildReader } from '../../src/read/build-reader.ts'
import { FrameUnavailableError } from '../../src/read/errors.ts'

export const BLOCK = 4096

/** A single-layer header of `size` bytes for `id`; the same `sha256` makes a final header promise the same content. */
export function fakeHeader(id: BuildId, size: number, opts: { incomplete: boolean; codec?: CodecName; sha256?: Uint8Array }): Header {
  const frames = FrameTable.fromSizes(opts.codec ?? 'zstd', [{ sizeU: size, sizeC: Math.max(1, size >> 2) }])
  const info = { buildId: id, fileSize: size, sha256: opts.sha256 ?? new Uint8Array(randomBytes(32)), frames }
  return singleLayerHeader({ buildId: id, blockSize: BLOCK, info, incomplete: opts.incomplete })
}

/** A pending header and a final one promising the same content (other codec and frames). */
export function headerPair(size: number, id: BuildId = randomUUID()): { pending: Header; final: Header } {
  const sha256 = new Uint8Array(randomBytes(32))
  return { pending: fakeHeader(id, size, { incomplete: true, codec: 'lz4', sha256 }), final: fakeHeader(id, size, { incomplete: false, codec: 'zstd', sha256 }) }
}

/** A reader over `source` for one header; `fail` makes reads reject as a pending copy that cannot serve them does. */
export class FakeReader {
  readonly header: Header
  readonly source: Buffer
  reads = 0
  closed = 0
  fail: Error | null = null
  /** While set, reads wait for it (a read in flight across a switchover). */
  gate: Promise<void> | null = null

  constructor(header: Header, source: Buffer) {
    this.header = header
    this.source = source
  }

  async readInto(dst: Uint8Array, offset: number, signal?: AbortSignal): Promise<void> {
    this.reads++
    if (this.gate) await this.gate
    signal?.throwIfAborted()
    if (this.closed > 0) throw new Error('read on a closed reader')
    if (this.fail) throw this.fail
    dst.set(this.source.subarray(offset, offset + dst.byteLength))
  }

  async prefetch(): Promise<number> {
    return 0
  }

  async close(): Promise<void> {
    this.closed++
  }
}

/** The error a fetcher gives when no source (here: the pending origin) could serve a frame. */
export function unavailable(): Error {
  return new FrameUnavailableError('frame 0 of the pending build', ['origin: USE_STORAGE'])
}

/**
 * The reader factory and final-header loader of one file: a reader per header opened (kept, in
 * order), and `final` answered by `loadFinal` (or its error); `loadFinal` waits for `finalGate`.
 */
export class FakeBuild {
  readonly source: Buffer
  readonly readers: FakeReader[] = []
  final: Header | Error
  finalGate: Promise<void> | null = null
  finalCalls = 0
  finalSignals: AbortSignal[] = []

  constructor(source: Buffer, final: Header | Error) {
    this.source = source
    this.final = final
  }

  readonly openReader = async (header: Header): Promise<BuildReader> => {
    const r = new FakeReader(header, this.source)
    this.readers.push(r)
    return r as unknown as BuildReader
  }

  readonly loadFinal = async (signal?: AbortSignal): Promise<Header> => {
    this.finalCalls++
    if (signal) this.finalSignals.push(signal)
    if (this.finalGate) await Promise.race([this.finalGate, abortOf(signal)])
    if (this.final instanceof Error) throw this.final
    return this.final
  }

  reader(i: number): FakeReader {
    return this.readers[i]
  }
}

/** A promise rejected when `signal` aborts (never settles without one). */
function abortOf(signal?: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (!signal) return
    if (signal.aborted) reject(signal.reason)
    signal.addEventListener('abort', () => reject(signal.reason), { once: true })
  })
}

/** A gate opened by hand: `promise` resolves when `open()` is called. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((r) => {
    open = r
  })
  return { promise, open }
}

/** Poll until `cond` holds (bounded): for work a file does in the background. */
export async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
