/**
 * Wiring for reading a stored build file with nothing else running (the `read` command, tools,
 * tests): header from object storage → fetcher (optional peers, optional shared cache, storage) →
 * chunk cache → BuildReader. A long-running node wires these itself to share one cache and fetcher.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FrameTable } from '../format/frame-table.ts'
import type { BuildInfo, Header } from '../format/header.ts'
import { describeLayer } from '../format/layer-info.ts'
import { dataObjectName, headerObjectName } from '../format/layout.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import type { ObjectStore } from '../storage/store.ts'
import { loadStoredHeader } from '../storage/stored-header.ts'
import { BuildReader, type LayerLookup } from './build-reader.ts'
import { ChunkCache } from './chunk-cache.ts'
import { FrameFetcher } from './fetcher.ts'
import { ReadMetrics } from './metrics.ts'
import { type FrameSource, StorageSource } from './source.ts'

/** Default local cache limit when the caller names none. */
const DEFAULT_CACHE_BYTES = 8 * 1024 * 1024 * 1024

export interface OpenStoredOptions {
  readonly store: ObjectStore
  readonly buildId: BuildId
  readonly kind: FileKind
  /** Chunk cache directory; a temporary one (removed on close) when absent. */
  readonly cacheDir?: string
  readonly cacheMaxBytes?: number
  /** Asked after `peers`, before storage: e.g. the shared frame cache (an NFS mount in production); its background writes (`idle`) end before close. */
  readonly shared?: FrameSource & { idle?(): Promise<void> }
  readonly peers?: FrameSource
  readonly metrics?: ReadMetrics
  readonly logger?: Logger
}

export interface StoredBuildFile {
  readonly size: number
  readonly header: Header
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>
  readInto(dst: Uint8Array, offset: number, signal?: AbortSignal): Promise<void>
  close(): Promise<void>
}

/**
 * Finds a layer's BuildInfo in its own stored header, by the same decision as every read
 * (layer-info.ts); a layer that header says is uncompressed gets its size from its data object.
 */
export function storageLayerLookup(store: ObjectStore): LayerLookup {
  return async (buildId, kind) => {
    if (!(await store.exists(headerObjectName(buildId, kind)))) return undefined
    const own = describeLayer(await loadStoredHeader(store, buildId, kind), buildId)
    if (own.kind === 'described') return own.info
    if (own.kind === 'ask-own-header') return undefined
    const st = await store.stat(dataObjectName(buildId, kind, 'none'))
    if (st === null) return undefined
    const info: BuildInfo = { buildId, fileSize: st.size, sha256: new Uint8Array(32), frames: new FrameTable('none', []) }
    return info
  }
}

export async function openStoredBuildFile(opts: OpenStoredOptions): Promise<StoredBuildFile> {
  const header = await loadStoredHeader(opts.store, opts.buildId, opts.kind)
  const metrics = opts.metrics ?? new ReadMetrics()
  const tmp = opts.cacheDir ? null : await mkdtemp(join(tmpdir(), 'snapswarm-cache-'))
  const fetcher = new FrameFetcher({ sources: [opts.peers, opts.shared, new StorageSource(opts.store)].filter((s) => s !== undefined), metrics, logger: opts.logger })
  const cache = await ChunkCache.open({
    dir: opts.cacheDir ?? tmp!,
    maxBytes: opts.cacheMaxBytes ?? DEFAULT_CACHE_BYTES,
    fetcher,
    metrics,
    logger: opts.logger,
  })
  const cleanup = async (): Promise<void> => {
    await cache.close()
    await opts.shared?.idle?.()
    if (tmp) await rm(tmp, { recursive: true, force: true })
  }
  let reader: BuildReader
  try {
    reader = await BuildReader.open({ header, kind: opts.kind, cache, metrics, lookupLayer: storageLayerLookup(opts.store) })
  } catch (err) {
    await cleanup()
    throw err
  }
  return {
    size: reader.size,
    header,
    read: (offset, length, signal) => reader.read(offset, length, signal),
    readInto: (dst, offset, signal) => reader.readInto(dst, offset, signal),
    close: async () => {
      await reader.close()
      await cleanup()
    },
  }
}
