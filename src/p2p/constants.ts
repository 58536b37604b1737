/**
 * Protocol ids, limits and defaults of the peer layer, one per line with the reason (like js-libp2p
 * `constants.ts`). Every length that arrives from the network is checked against one of these before
 * anything is allocated.
 */
import { PEER_BLOB_NAMES } from '../format/layout.ts'

// Versioned protocol ids: a breaking wire change adds a new id, old nodes keep speaking the old one.
export const PROTOCOL_HEADER = '/snapswarm/header/1.0.0'
export const PROTOCOL_FRAMES = '/snapswarm/frames/1.0.0'
export const PROTOCOL_BLOB = '/snapswarm/blob/1.0.0'
export const PROTOCOL_ANNOUNCE = '/snapswarm/announce/1.0.0'
export const PROTOCOL_MEMBERS = '/snapswarm/members/1.0.0'

import { CLUSTER_DEFAULTS } from '../config/schema.ts'
import { MAX_WRITTEN_FRAME_SIZE } from '../config/compression.ts'

const KiB = 1024
const MiB = 1024 * KiB

/** Requests are a build id, a kind and at most MAX_BATCH_FRAMES ranges (~16 bytes each): 64 KiB is ample. */
export const MAX_REQUEST_BYTES = 64 * KiB
/** A V4 header is ~26 KB typically; 64 MiB bounds a pathological one without a fixed allocation. */
export const MAX_HEADER_BYTES = 64 * MiB
/** The header response wraps the header bytes in a few bytes of protobuf (status, tag, length, pending). */
export const MAX_HEADER_RESPONSE_BYTES = MAX_HEADER_BYTES + 64
/** A peer never sends or takes a frame larger than a node writes (the configurable frame size's bound). */
export const MAX_FRAME_BYTES = MAX_WRITTEN_FRAME_SIZE
/** Frames per batch: bounds the lengths list and the bytes one request can make a server send. */
export const MAX_BATCH_FRAMES = 64
/** A batch's total bytes: 64 frames of 2 MiB; a client sets its own limit below this if it wants. */
export const MAX_BATCH_BYTES = 128 * MiB
/** FramesResponse: status + MAX_BATCH_FRAMES varint lengths (≤ 5 bytes each) + tags. */
export const MAX_FRAMES_RESPONSE_BYTES = 1 * KiB
/** snapfile (VM state) and metadata.json are small next to the data files. */
export const MAX_BLOB_BYTES = 64 * MiB
/** BlobResponse: status + one length. */
export const MAX_BLOB_RESPONSE_BYTES = 64
/**
 * Blob names a peer may ask for (docs/FORMAT.md) and a pending build's access traces (src/prefetch/trace.ts);
 * the provider is never asked for any other name.
 */
export const BLOB_NAMES: readonly string[] = PEER_BLOB_NAMES
/** An announcement entry is ~45 bytes; 1 MiB carries ~20,000 builds per node. */
export const MAX_ANNOUNCE_BYTES = 1 * MiB
export const MAX_ANNOUNCE_ENTRIES = 16_384
/** A varint of a length ≤ 2^35 fits in 5 bytes; a longer prefix is garbage, refused without reading on. */
export const MAX_VARINT_BYTES = 5

/** Granularity of the shared stall watchdog: one timer for all requests (undici), ≤ 25 % of a stall. */
export const WATCHDOG_TICK_MS = 250

/**
 * Per-connection stream limits for our protocols. libp2p's defaults (32 in / 64 out) RESET streams
 * beyond them; ours sit above the serving limit so overload is answered BUSY, as data.
 */
export const MAX_INBOUND_STREAMS = 256
export const MAX_OUTBOUND_STREAMS = 256

/* Timeouts, stall limit, serving limit and announce interval/TTL defaults: PEER_DEFAULTS in src/config/schema.ts. */
/** A peer cannot pin its entries in our directory for longer than this, whatever ttl it sends. */
export const MAX_ANNOUNCE_TTL_MS = 5 * 60_000
/** Changes are pushed after this pause, so a burst of local changes goes out as one push. */
export const ANNOUNCE_DEBOUNCE_MS = 50

/** Bootstrap reconnect backoff: first retry, growth, cap (so a restarted peer is found within 30 s). */
export const BOOTSTRAP_BACKOFF_MIN_MS = 500
export const BOOTSTRAP_BACKOFF_FACTOR = 2
export const BOOTSTRAP_BACKOFF_MAX_MS = 30_000

/** Identity key file in the data dir: protobuf-marshalled libp2p private key, mode 0600. */
export const IDENTITY_FILE = 'peer.key'

// Cluster membership (membership.ts).
/** Members listed in one push, and connected peers at most: the mesh is designed for up to this many nodes. */
export const MAX_MEMBERS = CLUSTER_DEFAULTS.maxPeers
/** Addresses kept per member (a node listening on every interface lists a few). */
export const MAX_MEMBER_ADDRS = 8
/** A multiaddr string longer than this is refused (an ip6/tcp/p2p address is ~100 characters). */
export const MAX_MEMBER_ADDR_CHARS = 256
/** A peer id string (base58 of an identity multihash) is ~52 characters. */
export const MAX_PEER_ID_CHARS = 128
/** MAX_MEMBERS entries of MAX_MEMBER_ADDRS addresses would be 2 MiB; real lists are a few hundred bytes per member. */
export const MAX_MEMBERS_BYTES = 512 * KiB
/** Member dials in flight at once: a joiner learning 1,000 members dials them in waves, not all at once. */
export const MAX_MEMBER_DIALS = 16
/** The member with the larger peer id waits this long (±25 %) before dialling one that may be dialling it. */
export const MEMBER_DIAL_GRACE_MS = 750
/** Periodic member list pushes (every CLUSTER_DEFAULTS.memberIntervalMs by default) go to this many random connected peers. */
export const MEMBER_FANOUT = 6
