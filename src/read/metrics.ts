/**
 * Instruments of the read path. One `ReadMetrics` per registry; every instrument is
 * get-or-create, so several caches or readers in one process share them by name.
 *
 * The `source` label is the FrameSource name: `local` (chunk cache hit), `peer`, `shared`, `storage`.
 */
import { type Counter, type Gauge, type Histogram, type Registry, counter, createRegistry, gauge, histogram } from '../obs/metrics.ts'

export class ReadMetrics {
  /** Reads of a virtual build file (one per BuildReader.read/readInto call). */
  readonly reads: Counter
  readonly bytesRead: Counter
  /** Local: layer pieces served from the chunk cache without a fetch; others: frames served. */
  readonly hits: Counter<'source'>
  readonly fetchSeconds: Histogram<'source'>
  readonly bytesFetched: Counter<'source'>
  /** A reader that found a fetch for its block already running and waited on it instead. */
  readonly dedupJoins: Counter
  /** Fetches started (the denominator of the dedup ratio). */
  readonly fetchesStarted: Counter
  readonly verifyFailures: Counter<'source'>
  /** Errors other than verification (network, timeouts, missing objects) per source. */
  readonly sourceErrors: Counter<'source'>
  readonly evictions: Counter
  /** Hedges: a source started beside a slow one (labelled with the source started), and hedges that won. */
  readonly hedgesStarted: Counter<'source'>
  readonly hedgesWon: Counter<'source'>
  /** A source with `retryAfterPenalty` asked again after a verification failure. */
  readonly penaltyRetries: Counter<'source'>
  readonly cacheBytes: Gauge
  /** Chunk cache pages dropped when first read after an open: bytes unlike their recorded CRC, or cut from the file. */
  readonly cacheCorruptPages: Counter<'reason'>
  /** Shared-cache writes by result: written, exists, locked, failed, dropped. */
  readonly sharedWrites: Counter<'result'>
  /** Bytes of reads answered with zeros from holes (nil mappings: zero blocks, never stored), without I/O. */
  readonly holeBytes: Counter
  /** Demand misses: reads that had to start a fetch (not served locally nor by a fetch already running). */
  readonly demandFetches: Counter
  /** Prefetch (src/prefetch): units fetched ahead, those a demand read then used, those never used. */
  readonly prefetchFrames: Counter
  readonly prefetchHits: Counter
  readonly prefetchUnused: Counter

  constructor(reg: Registry = createRegistry()) {
    this.reads = counter(reg, 'snapswarm_reads_total', 'Reads of virtual build files')
    this.bytesRead = counter(reg, 'snapswarm_read_bytes_total', 'Bytes returned by reads of virtual build files')
    this.hits = counter(reg, 'snapswarm_read_hits_total', 'Reads served per source (local = chunk cache)', ['source']) as Counter<'source'>
    this.fetchSeconds = histogram(reg, 'snapswarm_frame_fetch_seconds', 'Frame fetch + verify latency per source', [
      'source',
    ]) as Histogram<'source'>
    this.bytesFetched = counter(reg, 'snapswarm_frame_bytes_fetched_total', 'Stored (compressed) bytes fetched per source', [
      'source',
    ]) as Counter<'source'>
    this.dedupJoins = counter(reg, 'snapswarm_fetch_dedup_joins_total', 'Readers that joined a fetch already in flight')
    this.fetchesStarted = counter(reg, 'snapswarm_fetches_started_total', 'Frame fetches started by the chunk cache')
    this.verifyFailures = counter(reg, 'snapswarm_frame_verify_failures_total', 'Frames that failed verification per source', [
      'source',
    ]) as Counter<'source'>
    this.sourceErrors = counter(reg, 'snapswarm_frame_source_errors_total', 'Frame fetch errors per source', ['source']) as Counter<'source'>
    this.hedgesStarted = counter(reg, 'snapswarm_fetch_hedges_started_total', 'Sources started beside a slow one (hedges), per source started', [
      'source',
    ]) as Counter<'source'>
    this.hedgesWon = counter(reg, 'snapswarm_fetch_hedges_won_total', 'Hedges whose source answered first with a verified frame', ['source']) as Counter<'source'>
    this.penaltyRetries = counter(reg, 'snapswarm_fetch_penalty_retries_total', 'Sources asked again after a verification failure', [
      'source',
    ]) as Counter<'source'>
    this.evictions = counter(reg, 'snapswarm_chunk_cache_evictions_total', 'Build files evicted from the chunk cache')
    this.cacheBytes = gauge(reg, 'snapswarm_chunk_cache_bytes', 'Bytes present in the chunk cache')
    this.cacheCorruptPages = counter(reg, 'snapswarm_chunk_cache_corrupt_pages_total', 'Chunk cache pages dropped and refetched: mismatch (bytes unlike their recorded CRC) or truncated (cut from the data file)', [
      'reason',
    ]) as Counter<'reason'>
    this.sharedWrites = counter(reg, 'snapswarm_shared_cache_writes_total', 'Shared frame cache writes by result', [
      'result',
    ]) as Counter<'result'>
    this.holeBytes = counter(reg, 'snapswarm_read_hole_bytes_total', 'Bytes read as zeros from holes (nil mappings), with no fetch and no cache')
    this.demandFetches = counter(reg, 'snapswarm_demand_fetches_total', 'Demand reads that started a frame fetch (misses not joined to a fetch or prefetch in flight)')
    this.prefetchFrames = counter(reg, 'snapswarm_prefetch_frames_total', 'Frames (or raw chunks) fetched ahead from an access trace')
    this.prefetchHits = counter(reg, 'snapswarm_prefetch_hits_total', 'Prefetched frames a demand read then used (present or still in flight)')
    this.prefetchUnused = counter(reg, 'snapswarm_prefetch_unused_total', 'Prefetched frames no demand read used before their file closed')
  }
}

/** The node frame store (frame-store.ts): what it holds, what it dropped, what it found rotten. */
export class FrameStoreMetrics {
  readonly bytes: Gauge
  readonly builds: Gauge
  readonly evictions: Counter
  readonly corrupt: Counter
  readonly writes: Counter<'result'>

  constructor(reg: Registry) {
    this.bytes = gauge(reg, 'snapswarm_frame_store_bytes', 'Compressed frame bytes in the node frame store (a shared frame directory: the entries this node tracks there)')
    this.builds = gauge(reg, 'snapswarm_frame_store_builds', 'Builds with frames in the node frame store')
    this.evictions = counter(reg, 'snapswarm_frame_store_evictions_total', 'Builds evicted from the node frame store (size bound)')
    this.corrupt = counter(reg, 'snapswarm_frame_store_corrupt_total', 'Frame store entries that failed verification when read for a peer; removed')
    this.writes = counter(reg, 'snapswarm_frame_store_writes_total', 'Node frame store writes by result', ['result']) as Counter<'result'>
  }
}
