/**
 * Read any byte range of a build file's virtual contents (docs/ARCHITECTURE.md, "The read path"): each piece of the range is
 * resolved through the header's mappings to (layer, offset in that layer's data file); the nil build
 * reads as zeros; every layer is routed independently to its own chunk-cache file, compressed (its
 * frame table from `header.builds`) or raw (aligned chunks), so one read can touch several ancestors,
 * each from a different source.
 *
 * The header is treated as immutable for the reader's lifetime (the Go reader mutated headers while
 * readers used them); a header switch opens a new reader over the same chunk cache, whose contents
 * are geometry-independent uncompressed bytes. Each layer's cache file is keyed by the build id and
 * the content the header promises for it (cache-key.ts): a new header that promises the same content
 * reuses it, one that promises other content gets a file of its own.
 */
import { InvalidArgumentError } from '../errors.ts'
import type { FrameTable } from '../format/frame-table.ts'
import type { BuildInfo, Header } from '../format/header.ts'
import { mappedEnds } from '../format/header-validate.ts'
import { resolveLayerInfo } from '../format/layer-info.ts'
import { resolve } from '../format/mapping.ts'
import { type BuildId, type FileKind, NIL_BUILD_ID } from '../format/types.ts'
import type { ChunkCache, ChunkFileLease } from './chunk-cache.ts'
import { layerContentKey } from './cache-key.ts'
import type { ChunkFile, FramePlanner } from './chunk-file.ts'
import { RAW_CHUNK_SIZE } from './constants.ts'
import { digestPlanner } from './raw-chunks.ts'
import { ReadMetrics } from './metrics.ts'

/** The BuildInfo of a layer a V4 header maps but does not describe, from that layer's own header. */
export type LayerLookup = (buildId: BuildId, kind: FileKind) => Promise<BuildInfo | undefined>

export interface BuildReaderOptions {
  readonly header: Header
  readonly kind: FileKind
  readonly cache: ChunkCache
  readonly metrics?: ReadMetrics
  /** Asked for layers absent from a V4 header's builds; without it (or if it finds none) open fails. */
  readonly lookupLayer?: LayerLookup
}

interface Layer {
  readonly file: ChunkFile
  readonly plan: FramePlanner
}

export class BuildReader {
  readonly header: Header
  readonly kind: FileKind
  /** Virtual size of the build file. */
  readonly size: number
  private readonly layers: Map<BuildId, Layer>
  private readonly leases: ChunkFileLease[]
  private readonly metrics: ReadMetrics
  private closed = false

  private constructor(opts: BuildReaderOptions, layers: Map<BuildId, Layer>, leases: ChunkFileLease[]) {
    this.header = opts.header
    this.kind = opts.kind
    this.size = opts.header.size
    this.layers = layers
    this.leases = leases
    this.metrics = opts.metrics ?? new ReadMetrics()
  }

  /** Plan every layer the mappings use, then take a cache lease per layer (released by close). */
  static async open(opts: BuildReaderOptions): Promise<BuildReader> {
    const plans = await planLayers(opts)
    const layers = new Map<BuildId, Layer>()
    const leases: ChunkFileLease[] = []
    try {
      for (const [buildId, { plan, contentKey }] of plans) {
        const lease = await opts.cache.acquire(buildId, opts.kind, contentKey)
        leases.push(lease)
        layers.set(buildId, { file: lease.file, plan })
      }
    } catch (err) {
      await Promise.allSettled(leases.map((l) => l.release()))
      throw err
    }
    return new BuildReader(opts, layers, leases)
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    // Unsafe allocation is fine: every byte is written below, by a layer read or a zero fill.
    const out = Buffer.allocUnsafe(length)
    await this.readInto(out, offset, signal)
    return out
  }

  /** Fill `dst` with the virtual bytes at `offset`. On error, `dst` holds no promises: nothing writes later. */
  async readInto(dst: Uint8Array, offset: number, signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new InvalidArgumentError('build reader is closed')
    const end = offset + dst.byteLength
    if (!Number.isSafeInteger(offset) || offset < 0 || end > this.size) {
      throw new InvalidArgumentError(`read [${offset}, ${end}): expected a range inside the file size ${this.size}`)
    }
    this.metrics.reads.inc()
    this.metrics.bytesRead.inc(dst.byteLength)
    const pieces: Promise<void>[] = []
    for (let pos = offset; pos < end; ) {
      const r = resolve(this.header, pos)
      const n = Math.min(r.remaining, end - pos)
      const piece = dst.subarray(pos - offset, pos - offset + n)
      if (r.buildId === NIL_BUILD_ID) {
        piece.fill(0)
        this.metrics.holeBytes.inc(n)
      } else {
        const layer = this.layers.get(r.buildId)!
        pieces.push(layer.file.readInto(piece, r.storageOffset, layer.plan, signal))
      }
      pos += n
    }
    if (pieces.length === 1) return pieces[0]
    // allSettled, not all: no piece may still be writing into dst after we report an error.
    const results = await Promise.allSettled(pieces)
    for (const r of results) if (r.status === 'rejected') throw r.reason
  }

  /**
   * Fetch ahead the unit (frame or raw chunk) holding virtual offset `offset`, at prefetch priority
   * (ChunkFile.prefetch); the bytes fetched, 0 when it was here, in flight or reads as zeros.
   */
  async prefetch(offset: number): Promise<number> {
    if (this.closed || !Number.isSafeInteger(offset) || offset < 0 || offset >= this.size) return 0
    const r = resolve(this.header, offset)
    if (r.buildId === NIL_BUILD_ID) return 0
    const layer = this.layers.get(r.buildId)!
    return layer.file.prefetch(r.storageOffset, layer.plan)
  }

  /**
   * Call `unit` once per fetch unit that [offset, offset + length) touches, in order, with the unit's
   * identity (layer and start in its data file) and the first virtual offset of the range inside it.
   * Zero-filled pieces name no unit. Used to record which units a reader demands.
   */
  forEachUnit(offset: number, length: number, unit: (key: string, virtualOffset: number) => void): void {
    const end = Math.min(offset + length, this.size)
    for (let pos = offset; pos < end; ) {
      const r = resolve(this.header, pos)
      const n = Math.min(r.remaining, end - pos)
      if (r.buildId === NIL_BUILD_ID) {
        pos += n
        continue
      }
      const { plan } = this.layers.get(r.buildId)!
      for (let s = r.storageOffset; s < r.storageOffset + n; ) {
        const ref = plan(s)
        unit(`${r.buildId}:${ref.startU}`, pos + (s - r.storageOffset))
        s = ref.startU + ref.sizeU
      }
      pos += n
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.allSettled(this.leases.map((l) => l.release()))
  }
}

/** A fetch planner and a cache key (build id + promised content) per layer the header's mappings use. */
async function planLayers({ header, kind, lookupLayer }: BuildReaderOptions): Promise<Map<BuildId, { plan: FramePlanner; contentKey: string }>> {
  const plans = new Map<BuildId, { plan: FramePlanner; contentKey: string }>()
  for (const [buildId, mappedEnd] of mappedEnds(header)) {
    // The same decision `inspect --verify` makes (layer-info.ts); undefined: raw, size unknown.
    const info = await resolveLayerInfo(header, buildId, lookupLayer && ((id) => lookupLayer(id, kind)))
    const table = info?.frames
    // A V4 raw layer knows its data file's size; a V3 one only what this header maps of it.
    const rawEnd = info && info.fileSize >= mappedEnd ? info.fileSize : mappedEnd
    const contentKey = layerContentKey(header, buildId, kind, info)
    let plan: FramePlanner
    if (info?.digests) plan = digestPlanner(buildId, kind, info.fileSize, info.digests)
    else plan = table && table.codec !== 'none' ? framePlanner(buildId, kind, table, contentKey) : rawPlanner(buildId, kind, rawEnd)
    plans.set(buildId, { plan, contentKey })
  }
  return plans
}

/** Compressed frames carry the layer's content key: the node's frame store keeps contents apart by it. */
function framePlanner(buildId: BuildId, kind: FileKind, table: FrameTable, content: string): FramePlanner {
  const codec = table.codec
  return (offset) => {
    const f = table.frameAt(offset)
    return { buildId, kind, codec, startU: f.startU, sizeU: f.sizeU, startC: f.startC, sizeC: f.sizeC, content }
  }
}

/**
 * Raw layers are fetched in aligned chunks. The last chunk is cut at the data file's end: its size
 * from a V4 header, else (V3) the furthest byte this header maps from the layer, a lower bound on the
 * object's size, so the ranged read never runs past its end.
 */
function rawPlanner(buildId: BuildId, kind: FileKind, mappedEnd: number): FramePlanner {
  return (offset) => {
    const startU = offset - (offset % RAW_CHUNK_SIZE)
    const sizeU = Math.min(RAW_CHUNK_SIZE, mappedEnd - startU)
    return { buildId, kind, codec: 'none', startU, sizeU, startC: startU, sizeC: sizeU }
  }
}
