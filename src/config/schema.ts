/**
 * The one configuration format (JSON): file ← environment ← flags, validated by this schema. Unknown
 * keys are errors (a typo must not silently fall back to a default). Every setting and its default is
 * documented in docs/CONFIG.md.
 */
import { z } from 'zod'
import { compressionConfigSchema } from './compression.ts'

const MiB = 1024 * 1024
/** Compressed frames are ~4x smaller on VM-like data: 5 GiB holds about what the 20 GiB chunk cache does. */
const FRAME_STORE_BYTES = 5 * 1024 * MiB

/**
 * The peer layer's defaults: the one definition, used by this schema and by the p2p client, server
 * and announcer when a caller (a test, a tool) passes no value of its own.
 */
/**
 * Cluster membership defaults (src/p2p/membership.ts, src/p2p/rate-limited-log.ts): the one definition
 * the schema and the p2p code both use. `maxPeers` is also the protocol's bound on a member list.
 */
export const CLUSTER_DEFAULTS = {
  maxPeers: 1024,
  memberIntervalMs: 5_000,
  memberTtlMs: 60_000,
  warnIntervalMs: 60_000,
}

export const PEER_DEFAULTS = {
  /** Whole-request deadline of a peer request (client) and of serving one (server). */
  requestTimeoutMs: 10_000,
  /** No bytes for this long on a peer stream means the peer is stalled: move on. */
  stallTimeoutMs: 2_000,
  /** A source silent this long gets the next one started beside it (frames and headers). */
  hedgeAfterMs: 250,
  /** Requests served at once across all peers; one more is answered BUSY, never queued. */
  maxConcurrentServe: 64,
  /** Announcements are pushed this often; an entry lives announceTtlMs unless refreshed. */
  announceIntervalMs: 5_000,
  announceTtlMs: 20_000,
  /**
   * Frame-level availability among readers (src/swarm/): readers of the same build tell each other which
   * frames they hold and fetch, and take frames from each other before the origin or storage.
   */
  swarm: true,
} as const

export const configSchema = z
  .object({
    /** Object storage URL: file:///path, gs://bucket[/prefix] or s3://bucket[/prefix]. */
    storage: z.string().regex(/^(file|gs|s3):\/\//, 'expected file:///path, gs://bucket[/prefix] or s3://bucket[/prefix]').optional(),
    gcsEndpoint: z.string().url().optional(),
    dataDir: z.string().min(1).optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    compression: compressionConfigSchema.optional(),
    /** Stored header format (docs/FORMAT.md): the version written when a header needs build entries. */
    format: z
      .object({ headerVersion: z.union([z.literal(4), z.literal(5)]).default(4) })
      .strict()
      .default({ headerVersion: 4 }),
    node: z
      .object({
        listen: z.array(z.string()).default(['/ip4/127.0.0.1/tcp/0']),
        /** HTTP API address. Not a loopback one (127.0.0.0/8, ::1, localhost)? Then apiTokenFile is required (src/api/auth.ts). */
        api: z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+):\d+$/, 'expected HOST:PORT ([IPV6]:PORT for IPv6)').default('127.0.0.1:0'),
        bootstrap: z.array(z.string()).default([]),
        clusterKeyFile: z.string().optional(),
        /** File holding the API's bearer token; read (and checked) at start, never logged. */
        apiTokenFile: z.string().min(1).optional(),
        allowPeers: z.array(z.string()).optional(),
        /** Cap on pause uploads so they do not saturate the node's network; 0 = unlimited. */
        uploadRateBytesPerSec: z.number().int().min(0).default(0),
        /** How long the origin keeps a pending build's local copy after its upload. */
        pendingGraceMs: z.number().int().min(0).default(5 * 60_000),
      })
      .strict()
      .default({ listen: ['/ip4/127.0.0.1/tcp/0'], api: '127.0.0.1:0', bootstrap: [], uploadRateBytesPerSec: 0, pendingGraceMs: 300_000 }),
    cache: z
      .object({
        maxBytes: z.number().int().positive().default(20 * 1024 * MiB),
        sharedDir: z.string().optional(),
        /** Verified compressed frames of builds this node read, served to peers (src/read/sources/frame-store.ts). */
        frames: z
          .object({
            /** Without sharedDir: bytes kept under {dataDir}/frames (0 = no store). With it: bytes tracked. */
            maxBytes: z.number().int().min(0).default(FRAME_STORE_BYTES),
            /**
             * Builds announced as `cached` at most, most recently used first (0 = none). Unset: 64, or 0
             * with sharedDir (every node reads that directory itself; asking a peer for it is a detour).
             */
            announceMax: z.number().int().min(0).max(4096).optional(),
          })
          .strict()
          .default({ maxBytes: FRAME_STORE_BYTES }),
      })
      .strict()
      .default({ maxBytes: 20 * 1024 * MiB, frames: { maxBytes: FRAME_STORE_BYTES } }),
    peers: z
      .object({
        requestTimeoutMs: z.number().int().positive().default(PEER_DEFAULTS.requestTimeoutMs),
        stallTimeoutMs: z.number().int().positive().default(PEER_DEFAULTS.stallTimeoutMs),
        hedgeAfterMs: z.number().int().positive().default(PEER_DEFAULTS.hedgeAfterMs),
        maxConcurrentServe: z.number().int().positive().default(PEER_DEFAULTS.maxConcurrentServe),
        announceIntervalMs: z.number().int().positive().default(PEER_DEFAULTS.announceIntervalMs),
        announceTtlMs: z.number().int().positive().default(PEER_DEFAULTS.announceTtlMs),
        swarm: z.boolean().default(PEER_DEFAULTS.swarm),
      })
      .strict()
      .default({ ...PEER_DEFAULTS }),
    /** Cluster membership (src/p2p/membership.ts): every member learned through any one, and connected to. */
    cluster: z
      .object({
        /** Connected peers at most; members beyond it are known but not dialled. */
        maxPeers: z.number().int().min(1).max(CLUSTER_DEFAULTS.maxPeers).default(CLUSTER_DEFAULTS.maxPeers),
        /** A node pushes its member list to a few random peers this often (and to every new peer at once). */
        memberIntervalMs: z.number().int().positive().default(CLUSTER_DEFAULTS.memberIntervalMs),
        /** A member not connected and named by no list for this long has left and is forgotten. */
        memberTtlMs: z.number().int().positive().default(CLUSTER_DEFAULTS.memberTtlMs),
        /** Warnings about one peer or address (dial failed, handshake refused, bootstrap unreachable) at most once per this interval. */
        warnIntervalMs: z.number().int().positive().default(CLUSTER_DEFAULTS.warnIntervalMs),
      })
      .strict()
      .default({ ...CLUSTER_DEFAULTS }),
    /** The HTTP API's read answers (src/api/response-budget.ts, src/api/range-response.ts). */
    http: z
      .object({
        /** Bytes all Range answers together hold in memory (read buffers the socket has not taken yet). */
        responseBufferBytes: z.number().int().min(MiB).default(256 * MiB),
        /** Reads waiting for room in that budget at most; one more is answered 503 at once. */
        maxWaitingReads: z.number().int().min(0).default(64),
        /** How long a read waits for room before it is answered 503 (with Retry-After). */
        responseWaitMs: z.number().int().positive().default(10_000),
        /** A client that takes none of the bytes sent to it for this long is disconnected, freeing its buffers. */
        sendTimeoutMs: z.number().int().positive().default(30_000),
      })
      .strict()
      .default({ responseBufferBytes: 256 * MiB, maxWaitingReads: 64, responseWaitMs: 10_000, sendTimeoutMs: 30_000 }),
    switchover: z
      .object({
        finalHeaderPollMs: z.number().int().positive().default(30_000),
        onUploadFailed: z.enum(['error', 'read-from-origin']).default('error'),
      })
      .strict()
      .default({ finalHeaderPollMs: 30_000, onUploadFailed: 'error' }),
    /** NBD exports of build files (src/nbd). */
    nbd: z
      .object({
        enabled: z.boolean().default(true),
        /** Unix socket path; unset: {dataDir}/nbd.sock. */
        socket: z.string().min(1).optional(),
        /** Also listen on TCP `HOST:PORT` (no TLS: loopback only unless allowRemoteTcp). */
        tcp: z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+):\d+$/, 'expected HOST:PORT ([IPV6]:PORT for IPv6)').optional(),
        /** Let nbd.tcp be a non-loopback address: anyone who reaches it reads builds and writes overlays. */
        allowRemoteTcp: z.boolean().default(false),
        /** Serve `{buildId}/{kind}` read-only to a client that names it, without it being started first. */
        autoExport: z.boolean().default(true),
        maxConnections: z.number().int().min(1).max(65_536).default(256),
        /** Requests one connection runs at once; beyond it the socket is not read. */
        maxInFlight: z.number().int().min(1).max(4096).default(64),
        /** Payload bytes (read data, write data) one connection holds at once; one request alone always fits. */
        maxInFlightBytes: z.number().int().min(MiB).default(16 * MiB),
        /** Payload bytes all NBD connections hold together. */
        maxInFlightBytesTotal: z.number().int().min(MiB).default(256 * MiB),
        handshakeTimeoutMs: z.number().int().positive().default(10_000),
        /** Exports started with the node. */
        exports: z
          .array(
            z
              .object({
                build: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'expected a build id (lower-case UUID)'),
                file: z.enum(['memfile', 'rootfs']),
                overlay: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected 1-64 characters of [A-Za-z0-9._-]').optional(),
              })
              .strict(),
          )
          .max(1024)
          .default([]),
      })
      .strict()
      .default({
        enabled: true,
        allowRemoteTcp: false,
        autoExport: true,
        maxConnections: 256,
        maxInFlight: 64,
        maxInFlightBytes: 16 * MiB,
        maxInFlightBytesTotal: 256 * MiB,
        handshakeTimeoutMs: 10_000,
        exports: [],
      }),
    /** Access traces and prefetch on resume (src/prefetch). */
    prefetch: z
      .object({
        /** Fetch a file's traced frames ahead in the background when it is opened and a trace exists. */
        enabled: z.boolean().default(true),
        /** Record the order frames are first read in, for files that have no trace yet. */
        record: z.boolean().default(true),
        /** Prefetches in flight on the node at most; each demand fetch in flight takes one of these slots. */
        concurrency: z.number().int().min(1).max(64).default(8),
        /** Uncompressed bytes one open file prefetches at most. */
        budgetBytes: z.number().int().min(0).default(4 * 1024 * MiB),
        /** A recording ends this long after the file opened (or when it closes, or is full). */
        recordWindowMs: z.number().int().positive().default(60_000),
        /** Frames one trace records at most. */
        maxEntries: z.number().int().min(1).max(262_144).default(65_536),
      })
      .strict()
      .default({ enabled: true, record: true, concurrency: 8, budgetBytes: 4 * 1024 * MiB, recordWindowMs: 60_000, maxEntries: 65_536 }),
  })
  .strict()

export type Config = z.infer<typeof configSchema>
