/** Defaults and limits of the read path, one per line with the reason. */

/** Presence granularity of the chunk cache: the smallest block size (rootfs, memfile without huge pages). */
export const PAGE_SIZE = 4096

/** Fetch unit of a raw (uncompressed) layer: an aligned chunk, like e2b's 4 MiB storage chunks. */
export const RAW_CHUNK_SIZE = 4 * 1024 * 1024

/** A shared-cache lock older than this is a crashed writer's. */
export const SHARED_LOCK_STALE_MS = 10_000

/** Background shared-cache writes in flight; beyond it a write is dropped, never queued (no unbounded queues). */
export const SHARED_MAX_PENDING_WRITES = 16

/** Deadline for one source attempt: a stalled source falls back to the next one. */
export const SOURCE_TIMEOUT_MS = 30_000

/** Deadline for a whole shared fetch (all sources): every fetch ends, so no waiter hangs. */
export const FETCH_TIMEOUT_MS = 120_000

/** Fetches one read waits on at once (a sliding window): a 1 GiB read must not open 512 storage requests. */
export const READ_FETCH_WINDOW = 8

/** Fetched ahead of a sequential reader: keeps cores busy decoding the next frames while it consumes. */
export const READ_AHEAD_BYTES = 8 * 1024 * 1024

/** Only a streaming reader (misses this large, each starting where the last ended) gets read-ahead, not a faulting guest. */
export const READ_AHEAD_MIN_READ = 1024 * 1024

/** Rounds a read waits on fetches before giving up: each round fetches what is missing; >1 only after a geometry change. */
export const READ_MAX_ROUNDS = 4

/** How long a dirty presence bitmap may stay unsaved: a crash loses at most this much cache (never data). */
export const BITMAP_FLUSH_MS = 2_000
