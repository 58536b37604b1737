/**
 * The read path's public surface (issue 4): what the node wiring, the CLI and the p2p layer use.
 * Wiring order (DESIGN §7): FrameFetcher(peers → shared cache → storage) → ChunkCache → BuildReader.
 */
export { BuildReader, type BuildReaderOptions, type LayerLookup } from './build-reader.ts'
export { ChunkCache, type ChunkCacheOptions, type ChunkFileLease } from './chunk-cache.ts'
export type { ChunkFile, FramePlanner } from './chunk-file.ts'
export { CacheClosedError, FrameUnavailableError } from './errors.ts'
export { FrameFetcher, type FetcherOptions, type PenaltyReason, type VerifiedFrameFetcher } from './fetcher.ts'
export { ReadMetrics } from './metrics.ts'
export { openStoredBuildFile, type OpenStoredOptions, type StoredBuildFile, storageLayerLookup } from './open.ts'
export { SharedCacheSource, type SharedCacheOptions, type SharedWriteResult } from './sources/shared-cache.ts'
export { type FrameRef, type FrameSource, StorageSource } from './source.ts'
export { type DigestCheck, describeRef, verifyFrame } from './verify.ts'
