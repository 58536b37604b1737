/**
 * One build file open on an in-process read path (a file:// bucket, the chunk cache, the fetcher,
 * ResumedFile) with a prefetch session attached, over a storage source that can hold chosen frames:
 * what the priority and inheritance tests drive.
 */
import { join } from 'node:path'
import { BuildStatusBoard } from '../../src/cluster/build-status.ts'
import type { Header } from '../../src/format/header.ts'
import { dataObjectName, traceObjectName } from '../../src/format/layout.ts'
import { layerHeader, singleLayerHeader } from '../../src/format/mapping.ts'
import type { BuildId, FileKind } from '../../src/format/types.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { createRegistry } from '../../src/obs/metrics.ts'
import { PrefetchGate } from '../../src/prefetch/gate.ts'
import { PrefetchService } from '../../src/prefetch/service.ts'
import { encodeTrace } from '../../src/prefetch/trace.ts'
import { TraceStore } from '../../src/prefetch/traces.ts'
import { BuildReader } from '../../src/read/build-reader.ts'
import { ChunkCache } from '../../src/read/chunk-cache.ts'
import { FrameFetcher } from '../../src/read/fetcher.ts'
import { ReadMetrics } from '../../src/read/metrics.ts'
import { type FrameRef, type FrameSource, StorageSource } from '../../src/read/source.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import { ResumedFile } from '../../src/switchover/resumed-file.ts'
import { frameData, KiB, MiB, newId, vmData } from '../read/helpers.ts'

export const FRAME = 256 * KiB
const KIND: FileKind = 'memfile'

/** Storage that holds the requests for chosen frames until the test releases them, and logs every request. */
export class HeldSource implements FrameSource {
  readonly name = 'storage'
  readonly inner: FrameSource
  /** Frame indices requested, in order, and the whole references. */
  readonly requested: number[] = []
  readonly refs: FrameRef[] = []
  private readonly held = new Map<number, { release: () => void; gate: Promise<void> }>()

  constructor(inner: FrameSource) {
    this.inner = inner
  }

  hold(startU: number): void {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    this.held.set(startU, { release, gate })
  }

  release(startU: number): void {
    this.held.get(startU)?.release()
  }

  async fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null> {
    this.requested.push(ref.startU / FRAME)
    this.refs.push(ref)
    await this.held.get(ref.startU)?.gate
    return this.inner.fetch(ref, signal)
  }
}

export async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

export async function count(c: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await c.get()).values.reduce((n, v) => n + v.value, 0)
}

export interface Setup {
  readonly source: HeldSource
  readonly metrics: ReadMetrics
  readonly gate: PrefetchGate
  readonly file: ResumedFile
  /** The file's virtual bytes. */
  readonly plain: Buffer
  /** The bucket's directory. */
  readonly bucket: string
  /** Close the file and its session, as OpenFiles does (the cache and store stay open). */
  closeFile(): Promise<void>
  /** Close the session (its recording saved), the file, the cache and the store. */
  close(): Promise<void>
}

/**
 * A build of 8 frames with a stored trace of `traced` frames, opened with a session. With `child`, a
 * child build whose own data replaces those frames of it (no trace of its own) is opened instead.
 * Frames in `held` are held by the source from before the session starts.
 */
export async function setup(dir: string, opts: { traced: number[]; concurrency: number; held?: number[]; child?: number[]; budgetBytes?: number }): Promise<Setup> {
  const store = await FsStore.open(join(dir, 'bucket'))
  const parentId = newId()
  const framed = await frameData('zstd', vmData(8 * FRAME, 3), FRAME)
  await store.put(dataObjectName(parentId, KIND, 'zstd'), framed.stored)
  const parent = singleLayerHeader({ buildId: parentId, blockSize: 4096, info: { buildId: parentId, fileSize: framed.plain.length, sha256: new Uint8Array(32), frames: framed.table } })
  await store.put(traceObjectName(parentId, KIND), encodeTrace({ buildId: parentId, kind: KIND, size: parent.size, entries: opts.traced.map((i) => ({ offset: i * FRAME, ms: i })) }))
  const { header, plain } = opts.child ? await storeChild(store, parent, framed.plain, opts.child) : { header: parent, plain: framed.plain }
  const source = new HeldSource(new StorageSource(store))
  const metrics = new ReadMetrics(createRegistry())
  const fetcher = new FrameFetcher({ sources: [source], metrics })
  const cache = await ChunkCache.open({ dir: join(dir, 'cache'), maxBytes: 64 * MiB, fetcher, metrics })
  const board = new BuildStatusBoard()
  const gate = new PrefetchGate(fetcher, opts.concurrency)
  const service = new PrefetchService({
    settings: { enabled: true, record: true, budgetBytes: opts.budgetBytes ?? 64 * MiB, recordWindowMs: 60_000, maxEntries: 1000 },
    traces: new TraceStore({ store, status: board, log: silentLogger }),
    gate,
    log: silentLogger,
  })
  const file = await ResumedFile.open(
    { buildId: header.buildId, kind: KIND, board, log: silentLogger, openReader: (h) => BuildReader.open({ header: h, kind: KIND, cache, metrics }), loadFinal: async () => header },
    header,
  )
  for (const i of opts.held ?? []) source.hold(i * FRAME)
  const session = service.attach(header.buildId, KIND, file)
  return {
    source,
    metrics,
    gate,
    file,
    plain,
    bucket: join(dir, 'bucket'),
    closeFile: async () => {
      await Promise.all([file.close(), session.close()])
    },
    close: async () => {
      for (const i of [0, 1, 2, 3, 4, 5, 6, 7]) source.release(i * FRAME)
      await session.close()
      await service.idle()
      await file.close()
      await cache.close()
      await store.close()
    },
  }
}

/** A child of `parent` whose data replaces frames `dirty` (new bytes, one frame each); its header and virtual bytes. */
async function storeChild(store: FsStore, parent: Header, parentPlain: Buffer, dirty: number[]): Promise<{ header: Header; plain: Buffer }> {
  const id: BuildId = newId()
  const data = vmData(dirty.length * FRAME, 99)
  const framed = await frameData('zstd', data, FRAME)
  await store.put(dataObjectName(id, KIND, 'zstd'), framed.stored)
  const header = layerHeader(parent, {
    buildId: id,
    dirty: dirty.map((f) => ({ start: f * FRAME, end: (f + 1) * FRAME })),
    info: { buildId: id, fileSize: data.length, sha256: new Uint8Array(32), frames: framed.table },
  })
  const plain = Buffer.from(parentPlain)
  for (const [i, f] of dirty.entries()) data.copy(plain, f * FRAME, i * FRAME, (i + 1) * FRAME)
  return { header, plain }
}
