/**
 * `snapswarm node`: the daemon. All wiring happens here, in one place, one named function per part: storage,
 * the chunk cache and its source chain (local origin + peers → shared cache → storage), the libp2p
 * peer, pauses and uploads, and the HTTP API.
 */
import { mkdir, realpath } from 'node:fs/promises'
import { join, resolve as resolvePath, sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Config } from '../config/schema.ts'
import type { Header } from '../format/header.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import { counter, createRegistry, gauge, type Registry } from '../obs/metrics.ts'
import { createSnapswarmPeer, readClusterKey, type SnapswarmPeer, tuneGcForBulkTransfer } from '../p2p/index.ts'
import { BuildReader } from '../read/build-reader.ts'
import { ChunkCache } from '../read/chunk-cache.ts'
import { FrameFetcher } from '../read/fetcher.ts'
import { ReadMetrics } from '../read/metrics.ts'
import { warmReadPath } from '../read/warm-up.ts'
import { storageLayerLookup } from '../read/open.ts'
import { FrameStore } from '../read/sources/frame-store.ts'
import { type HeldFrames, heldFramesFirst } from '../read/sources/held-frames.ts'
import { SharedCacheSource, TrackedSharedCache } from '../read/sources/shared-cache.ts'
import { StorageSource } from '../read/source.ts'
import type { ObjectStore } from '../storage/store.ts'
import { openStore } from '../storage/url.ts'
import { RateLimiter } from '../upload/rate-limit.ts'
import { BuildStatusBoard } from '../cluster/build-status.ts'
import { CachedAnnouncer, CachedFrameServer, type FrameRelay } from '../cluster/cached-frames.ts'
import { SwarmRelay } from '../cluster/swarm-relay.ts'
import { HaveService } from '../p2p/content/index.ts'
import { layerContentKey } from '../read/cache-key.ts'
import { SwarmAvailability } from '../swarm/availability.ts'
import { HeaderResolver } from '../switchover/header-resolver.ts'
import { resolveApiToken } from '../api/auth.ts'
import { type ApiHandlers, HttpApi, READ_CHUNK } from '../api/http-api.ts'
import { ResponseBudget } from '../api/response-budget.ts'
import { type LocalBuild, LocalBuilds } from '../origin/local-builds.ts'
import { PauseManager, parsePauseRequest } from '../origin/pause.ts'
import { EarlyFrames } from '../read/sources/early-frames.ts'
import { PeerFrameSource } from '../read/sources/peer.ts'
import { LocalBuildProvider } from '../origin/provider.ts'
import { type FileHandleLike, OpenFiles } from '../switchover/open-files.ts'
import { PrefetchGate } from '../prefetch/gate.ts'
import { blobFromServingPeers } from '../prefetch/peers.ts'
import { PrefetchService } from '../prefetch/service.ts'
import { TraceStore } from '../prefetch/traces.ts'
import { NbdService } from '../nbd/service.ts'

/** How long a read waits for a build that is not visible yet (its origin still framing it, its announcement on the way). */
const VISIBILITY_WAIT_MS = 10_000
/** How long a pause waits for its parent's header to become visible (the parent may have been paused a moment ago). */
const PARENT_WAIT_MS = 60_000

export interface NodeStartOptions {
  readonly config: Config
  readonly dataDir: string
  readonly logger: Logger
  /** Codec of pending frames served to peers ('upload' = same geometry as the upload). */
  readonly pendingCodec?: 'upload' | 'none' | 'lz4' | 'zstd'
}

export class SnapswarmNode {
  readonly peerId: string
  readonly apiUrl: string
  readonly peer: SnapswarmPeer
  readonly registry: Registry
  readonly store: ObjectStore
  private readonly parts: {
    api: HttpApi
    pauses: PauseManager
    cache: ChunkCache
    files: OpenFiles
    nbd: NbdService
    prefetch: { service: PrefetchService; traces: TraceStore }
    shared?: { idle(): Promise<void> }
    cachedAnnouncer?: CachedAnnouncer
    have?: HaveService
    timer: NodeJS.Timeout
  }
  private readonly builds: LocalBuilds
  private readonly log: Logger

  private constructor(init: {
    peerId: string
    apiUrl: string
    peer: SnapswarmPeer
    registry: Registry
    store: ObjectStore
    parts: SnapswarmNode['parts']
    builds: LocalBuilds
    log: Logger
  }) {
    this.peerId = init.peerId
    this.apiUrl = init.apiUrl
    this.peer = init.peer
    this.registry = init.registry
    this.store = init.store
    this.parts = init.parts
    this.builds = init.builds
    this.log = init.log
  }

  addrs(): string[] {
    return this.peer.addrs()
  }

  /** Wire the parts (each in its own function below, in the order they depend on each other), then start them. */
  static async start(opts: NodeStartOptions): Promise<SnapswarmNode> {
    tuneGcForBulkTransfer()
    const { config, dataDir } = opts
    // First: an API exposed without a token (or a bad token file) refuses the start before anything is opened.
    const apiToken = await resolveApiToken(config.node)
    const log = opts.logger.child({ component: 'node' })
    await mkdir(dataDir, { recursive: true })
    const registry = createRegistry()
    // NBD exports read through `files` (below); a bad nbd.* setting refuses the start here.
    const nbd = wireNbd(config, dataDir, registry, log, (id, kind) => files.open(id, kind))
    const metrics = new ReadMetrics(registry)
    const { store, builds, frames } = await wireStorage(config, dataDir, registry, metrics, opts.logger)
    const w: Wiring = { config, dataDir, registry, metrics, store, builds, frames, log, logger: opts.logger }
    const cluster = wireCluster(w, () => peer)
    const peer = await wirePeer(w, cluster.provider)
    const { fetcher, cache, shared, swarm, early } = await wireReadPath(w, peer, cluster)
    const prefetch = wirePrefetch(w, fetcher, cluster.traces)
    followAnnouncements(peer, cluster.board)
    const { resolver, files } = wireSwitchover(w, { board: cluster.board, peer, cache, prefetch, swarm: swarm?.availability, early })
    const pauses = await wireOrigin(w, { board: cluster.board, peer, resolver, nbd, pendingCodec: opts.pendingCodec ?? 'upload' })
    const api = wireApi(w, { peer, resolver, files, nbd, pauses, token: apiToken })
    let apiUrl: string
    let cachedAnnouncer: CachedAnnouncer | undefined
    try {
      // Listening for peers' availability before any connection exists: their first full state is not lost.
      await swarm?.have.start()
      await peer.start()
      apiUrl = await api.listen(config.node.api)
      // Builds a previous run left: finished ones are dropped, unfinished ones resumed once their
      // sources check out (or failed), damaged records never resumed.
      await pauses.recover()
      cluster.provider.recovered()
      await nbd.listen(config, (id) => ['framing', 'pending'].includes(builds.get(id)?.state ?? ''))
      cachedAnnouncer = wireCachedAnnouncer(w, peer, cluster)
    } catch (err) {
      // A node that cannot start must not linger with open sockets (the CLI would never exit).
      await Promise.allSettled([api.close(), nbd.close(), pauses.stop(), swarm?.have.stop(), peer.stop(), cache.close(), store.close(), frames?.idle()])
      throw err
    }
    // The first read of a resumed VM should not also pay for the read path's code running cold.
    await warmReadPath(join(dataDir, 'warm-up'), log)
    const timer = startEviction(w, peer, cluster.provider, cachedAnnouncer)
    const parts = { api, pauses, cache, files, nbd, prefetch: { service: prefetch, traces: cluster.traces }, shared, cachedAnnouncer, timer, have: swarm?.have }
    return new SnapswarmNode({ peerId: peer.peerId, apiUrl, peer, registry, store, parts, builds, log })
  }

  /**
   * Open a build file for lazy reads, in process: the same path as `GET /v1/builds/{id}/{kind}`
   * (local cache → peers → shared cache → storage, switchover included), for a host that embeds the
   * node (e.g. the page-fault handler of a resumed VM). Close the handle when done.
   */
  openRead(id: BuildId, kind: FileKind, signal?: AbortSignal, opts?: { firstReadAt?: number }): Promise<FileHandleLike> {
    return this.parts.files.open(id, kind, signal, opts)
  }

  /** The NBD server's addresses (`unix:/path`, `tcp:host:port`) and exports. */
  get nbd(): NbdService {
    return this.parts.nbd
  }

  /** Wait for a build this node originated to leave `pending` (tests, the demo). */
  localBuild(id: BuildId): LocalBuild | undefined {
    return this.builds.get(id)
  }

  async stop(): Promise<void> {
    const { api, pauses, cache, files, nbd, prefetch, shared, cachedAnnouncer, timer } = this.parts
    clearInterval(timer)
    cachedAnnouncer?.stop()
    await api.close()
    await nbd.close()
    await pauses.stop()
    await files.closeAll()
    // Recordings of the files just closed are written before storage closes.
    await prefetch.service.idle()
    prefetch.traces.close()
    await this.parts.have?.stop()
    await this.peer.stop() // withdraws announcements, resets streams
    await cache.close()
    await shared?.idle()
    await this.store.close()
    this.log.info('stopped')
  }
}

/** What every wiring step below uses: the settings, the node's storage and its metrics. */
interface Wiring {
  readonly config: Config
  readonly dataDir: string
  readonly registry: Registry
  readonly metrics: ReadMetrics
  readonly store: ObjectStore
  readonly builds: LocalBuilds
  /** The node's frame store; none when `cache.frames.maxBytes` is 0. */
  readonly frames: HeldFrames | undefined
  /** The node's logger (component: node). */
  readonly log: Logger
  /** The root logger, for parts that name their own component. */
  readonly logger: Logger
}

/** The cluster side: what the node knows of builds, what it serves to peers, access traces. */
interface ClusterParts {
  readonly board: BuildStatusBoard
  readonly cachedServer: CachedFrameServer | undefined
  /** The swarm's relay (set once the read path exists): frames peers ask this node to wait for or fetch. */
  readonly relay: { current?: FrameRelay }
  readonly traces: TraceStore
  readonly provider: LocalBuildProvider
}

/** The NBD server; `openFile` is how its exports read a build file (the node's open files). */
function wireNbd(config: Config, dataDir: string, registry: Registry, log: Logger, openFile: (id: BuildId, kind: FileKind) => Promise<FileHandleLike>): NbdService {
  return NbdService.create({ config, dataDir, openFile, registry, log: log.child({ component: 'nbd' }) })
}

/** The bucket, the records of builds this node originated and the node's frame store. */
async function wireStorage(config: Config, dataDir: string, registry: Registry, metrics: ReadMetrics, logger: Logger): Promise<{ store: ObjectStore; builds: LocalBuilds; frames: HeldFrames | undefined }> {
  const store = await openStore(config.storage ?? pathToFileURL(join(dataDir, 'bucket')).href, { gcsEndpoint: config.gcsEndpoint, logger })
  const builds = new LocalBuilds(dataDir)
  const frames = await openFrameStore(config, dataDir, builds, registry, metrics, logger).catch(async (err: unknown) => {
    await store.close?.()
    throw err
  })
  return { store, builds, frames }
}

/** The status board, cached-frame serving, access traces and what the node serves to peers. `peer` is created after these. */
function wireCluster(w: Wiring, peer: () => SnapswarmPeer): ClusterParts {
  const { frames, builds, registry, log } = w
  // A build whose upload failed is never served from (nor kept in) the frame store, whoever said so.
  const board = new BuildStatusBoard({ onState: (id, state) => void (state === 'failed' && frames?.index.forbid(id)) })
  const relay: ClusterParts['relay'] = {}
  const relayFrame: FrameRelay = { frame: (...a) => relay.current?.frame(...a) ?? Promise.resolve(null) }
  const cachedServer = frames ? new CachedFrameServer({ store: frames, builds, board, registry, log, relay: relayFrame }) : undefined
  // Access traces: a pending build's waits here for its upload (and is served to peers by its origin).
  const traces = new TraceStore({
    store: w.store,
    status: board,
    fromPeers: (id, name, signal) => blobFromServingPeers(peer(), board.holdersOf(id), id, name, signal),
    log: log.child({ component: 'prefetch' }),
  })
  const provider = new LocalBuildProvider(builds, cachedServer, traces)
  return { board, cachedServer, traces, provider, relay }
}

/** The libp2p peer: admission, wire protocols, announcements. */
async function wirePeer(w: Wiring, provider: LocalBuildProvider): Promise<SnapswarmPeer> {
  const { config } = w
  return createSnapswarmPeer({
    dataDir: w.dataDir,
    listen: config.node.listen,
    bootstrap: config.node.bootstrap,
    clusterKey: config.node.clusterKeyFile ? await readClusterKey(config.node.clusterKeyFile) : undefined,
    allowPeers: config.node.allowPeers,
    registry: w.registry,
    logger: w.logger,
    provider,
    server: { maxServing: config.peers.maxConcurrentServe, timeoutMs: config.peers.requestTimeoutMs, stallMs: config.peers.stallTimeoutMs },
    client: { timeoutMs: config.peers.requestTimeoutMs, stallMs: config.peers.stallTimeoutMs },
    announce: { intervalMs: config.peers.announceIntervalMs, ttlMs: config.peers.announceTtlMs },
    // Membership: every member learned through any one and connected to (src/p2p/membership.ts).
    maxPeers: config.cluster.maxPeers,
    warnIntervalMs: config.cluster.warnIntervalMs,
    membership: { intervalMs: config.cluster.memberIntervalMs, ttlMs: config.cluster.memberTtlMs, timeoutMs: config.peers.requestTimeoutMs },
  })
}

/** The read path: the frame sources in order (peers, the shared cache or frame store, storage), the fetcher and the chunk cache. */
async function wireReadPath(
  w: Wiring,
  peer: SnapswarmPeer,
  cluster: ClusterParts,
): Promise<{ fetcher: FrameFetcher; cache: ChunkCache; shared: HeldFrames | SharedCacheSource | undefined; swarm: SwarmParts | undefined; early: EarlyFrames }> {
  const { config, frames, metrics, logger } = w
  const { board } = cluster
  // Frame-level availability needs the frame store: it is where this node serves its peers from.
  const availability = frames && config.peers.swarm ? new SwarmAvailability(peer.peerId, undefined, SWARM_RECENT_FRAMES) : undefined
  const early = new EarlyFrames({ registry: w.registry }) // frames that came with a pending header (the resume's first read)
  const peerSource = new PeerFrameSource(peer.client, peer.directory, board, w.builds, {
    early,
    timeoutMs: config.peers.requestTimeoutMs,
    stallMs: config.peers.stallTimeoutMs,
    // A peer's USE_STORAGE / UPLOAD_FAILED goes on the status board (the switchover follows it).
    onUploadState: (id, state) => board.set(id, state),
    swarm: availability && { swarm: availability, connected: () => peer.node.connectedPeers(), registry: w.registry },
  })
  const shared = frames ?? (config.cache.sharedDir ? new SharedCacheSource({ dir: config.cache.sharedDir, metrics, logger }) : undefined)
  const fetcher = new FrameFetcher({
    // The frame store's own frames of builds that are not pending, peers, the shared cache or the frame
    // store (a pending build's fallback), storage last.
    sources: [
      ...(frames ? [heldFramesFirst(frames, (id) => peerSource.asksFirst(id))] : []),
      peerSource,
      ...(shared ? [shared] : []),
      new StorageSource(w.store),
    ],
    hedgeAfterMs: config.peers.hedgeAfterMs,
    metrics,
    logger,
    onPenalty: (source, ref, reason) => {
      if (source === peerSource && reason === 'corrupt') peerSource.penalize(ref)
    },
    onVerified: availability && ((ref, stored) => availability.arrived(ref, stored)),
  })
  const cache = await ChunkCache.open({ dir: join(w.dataDir, 'cache'), maxBytes: config.cache.maxBytes, fetcher, metrics, logger })
  const swarm = availability && wireSwarm(w, peer, cluster, { availability, peerSource, fetcher })
  return { fetcher, cache, shared, swarm, early }
}

/** Frames that arrived lately kept in memory for peers that ask before they are in the frame store. */
const SWARM_RECENT_FRAMES = 16

/** The swarm: frame availability exchanged with peers (have protocol) and relayed frames served from it. */
interface SwarmParts {
  readonly availability: SwarmAvailability
  readonly have: HaveService
}

function wireSwarm(w: Wiring, peer: SnapswarmPeer, cluster: ClusterParts, deps: { availability: SwarmAvailability; peerSource: PeerFrameSource; fetcher: FrameFetcher }): SwarmParts {
  const { availability, peerSource, fetcher } = deps
  cluster.relay.current = new SwarmRelay({
    swarm: availability,
    // Marked first: a frame fetched for a peer goes to the origin or storage, never to another owner.
    fetchFor: (ref, signal) => {
      peerSource.swarm?.relayFor(ref)
      return fetcher.fetch(ref, signal)
    },
    registry: w.registry,
    log: w.log.child({ component: 'swarm' }),
  })
  // A build the frame store dropped is no longer held here: peers stop asking for its frames.
  w.frames?.index.subscribe((c) => c.present || availability.dropHeld(c.buildId))
  const have = new HaveService(peer.node, availability, { registry: w.registry, logger: w.logger })
  return { availability, have }
}

/** A build file opened for reading: its layers' frame tables are indexed for the swarm. */
function indexLayers(swarm: SwarmAvailability | undefined, header: Header, kind: FileKind): void {
  if (!swarm) return
  for (const [id, info] of header.builds) swarm.register(id, kind, info.frames, layerContentKey(header, id, kind, info))
}

/** Prefetching a build file's recorded accesses when it is opened. */
function wirePrefetch(w: Wiring, fetcher: FrameFetcher, traces: TraceStore): PrefetchService {
  const { config } = w
  return new PrefetchService({
    // A file's prefetch never takes more than half the chunk cache: demand reads keep room.
    settings: { ...config.prefetch, budgetBytes: Math.min(config.prefetch.budgetBytes, Math.floor(config.cache.maxBytes / 2)) },
    traces,
    gate: new PrefetchGate(fetcher, config.prefetch.concurrency),
    log: w.log.child({ component: 'prefetch' }),
  })
}

/** What peers announce of builds goes on the status board; a peer that leaves holds nothing any more. */
function followAnnouncements(peer: SnapswarmPeer, board: BuildStatusBoard): void {
  peer.directory.subscribe((change) => {
    if (change.current) board.set(change.buildId, change.current)
  })
  // A departed peer is no place to read from: asking it would cost a dial timeout per request.
  peer.node.onPeerEvent((ev) => ev.type === 'disconnect' && board.dropHolder(ev.peer))
}

/** Opening build files: the header lookup and the move from a pending to the final header. */
function wireSwitchover(
  w: Wiring,
  deps: { board: BuildStatusBoard; peer: SnapswarmPeer; cache: ChunkCache; prefetch: PrefetchService; swarm?: SwarmAvailability; early: EarlyFrames },
): { resolver: HeaderResolver; files: OpenFiles } {
  const { config, registry, store, metrics, log } = w
  const { board, cache } = deps
  const switchovers = counter(registry, 'snapswarm_header_switchovers_total', 'Build files moved from a pending (peer-served) header to the final header in storage')
  const resolver = new HeaderResolver({ store, builds: w.builds, board, peer: deps.peer, pollMs: config.switchover.finalHeaderPollMs, hedgeMs: config.peers.hedgeAfterMs, expectsPeers: config.node.bootstrap.length > 0, early: deps.early, log })
  resolver.warmOnAnnouncements() // for the node's lifetime: the directory goes with it
  const files = new OpenFiles({
    board,
    log,
    initialHeader: (id, kind, signal, firstReadAt) => resolver.initial(id, kind, signal, VISIBILITY_WAIT_MS, { firstReadAt }),
    loadFinal: (id, kind, signal) => resolver.final(id, kind, signal),
    onSwitch: () => switchovers.inc(),
    onUploadFailed: config.switchover.onUploadFailed,
    openReader: (header: Header, kind: FileKind) => {
      indexLayers(deps.swarm, header, kind)
      return BuildReader.open({ header, kind, cache, metrics, lookupLayer: storageLayerLookup(store) })
    },
    prefetch: deps.prefetch,
  })
  return { resolver, files }
}

/** The pause side: frame locally, announce pending, upload; every state change announced. */
async function wireOrigin(
  w: Wiring,
  deps: { board: BuildStatusBoard; peer: SnapswarmPeer; resolver: HeaderResolver; nbd: NbdService; pendingCodec: NonNullable<NodeStartOptions['pendingCodec']> },
): Promise<PauseManager> {
  const { config } = w
  const { resolver } = deps
  return new PauseManager({
    forbiddenPath: await forbiddenPauseInputs(config, w.dataDir),
    store: w.store,
    builds: w.builds,
    compression: config.compression,
    headerVersion: config.format.headerVersion,
    pendingCodec: deps.pendingCodec,
    limiter: new RateLimiter(config.node.uploadRateBytesPerSec),
    parentHeader: (id, kind, signal) => resolver.initial(id, kind, signal, PARENT_WAIT_MS, { mustExist: true }),
    finalHeader: (id, kind, signal) => resolver.final(id, kind, signal, 10 * 60_000),
    onState: announceLocalBuild(deps),
    writer: `node:${deps.peer.peerId}`,
    log: w.log,
    registry: w.registry,
  })
}

/** What the node does when one of its own builds changes state: NBD, the status board, the cluster. */
function announceLocalBuild(deps: { board: BuildStatusBoard; peer: SnapswarmPeer; nbd: NbdService }): (b: LocalBuild) => void {
  const { board, peer, nbd } = deps
  return (b) => {
    if (b.state === 'uploaded' || b.state === 'failed') nbd.buildFinished(b.id)
    // Readers on this node follow its own builds too (proactive switchover, failure at once).
    board.set(b.id, b.state)
    const size = (k: FileKind) => b.files.get(k)?.header.size ?? 0
    // A failed upload is announced too (not withdrawn): readers elsewhere learn at once that the
    // build will never be in storage. The entry goes when the local copy is evicted.
    if (b.state === 'pending' || b.state === 'uploaded' || b.state === 'failed') {
      peer.announcer.announce({ buildId: b.id, state: b.state, memfileSize: size('memfile'), rootfsSize: size('rootfs') })
    }
  }
}

/**
 * The API pauses files by path: never ones of the node's own (identity key, cache, builds), which
 * would publish them to the bucket and the cluster. Compared as real paths: a symlink (or a relative
 * path) to a secret or into the data dir is the same file.
 */
async function forbiddenPauseInputs(config: Config, dataDir: string): Promise<(abs: string) => string | undefined> {
  const real = (p: string) => realpath(p).catch(() => resolvePath(p))
  const secrets = await Promise.all([config.node.clusterKeyFile, config.node.apiTokenFile].flatMap((f) => (f ? [real(f)] : [])))
  const realDataDir = await real(dataDir)
  return (abs: string) =>
    abs === realDataDir || abs.startsWith(realDataDir + sep) || secrets.includes(abs) ? "is inside the node's data directory or is its cluster key or API token" : undefined
}

/** The HTTP API over the node's parts. */
function wireApi(
  w: Wiring,
  deps: { peer: SnapswarmPeer; resolver: HeaderResolver; files: OpenFiles; nbd: NbdService; pauses: PauseManager; token: string | undefined },
): HttpApi {
  const { config, registry } = w
  const { peer, nbd, pauses } = deps
  const pendingGauge = gauge(registry, 'snapswarm_pending_builds', 'Builds this node originated whose upload is still running')
  const handlers: ApiHandlers = {
    health: () => ({ ok: true, peerId: peer.peerId, peers: peer.node.connectedPeers().length }),
    ready: () => true,
    metrics: async () => {
      pendingGauge.set(w.builds.list().filter((b) => b.state === 'pending' || b.state === 'framing').length)
      return { contentType: registry.contentType, body: await registry.metrics() }
    },
    peers: () => ({
      self: peer.peerId,
      addrs: peer.addrs(),
      connected: peer.node.connectedPeers(),
      builds: peer.directory.builds(),
      announced: peer.announcer.announced().map((a) => ({ buildId: a.buildId, state: a.state })),
      members: peer.membership.members().map((m) => ({ peer: m.peer, connected: m.connected })),
    }),
    buildInfo: (id) => deps.resolver.describe(id),
    openRead: (id, kind, signal, opts) => deps.files.open(id, kind, signal, opts),
    exports: {
      list: () => nbd.list(),
      start: (body) => nbd.start(body),
      stop: (name, discard) => nbd.stop(name, discard),
    },
    pause: async (id, body) => {
      // A body naming an NBD overlay pauses the overlay's written blocks as a child of its build.
      const b = await nbd.pause(id, body, (req, trusted) => pauses.pause(id, parsePauseRequest(req), trusted))
      return { id: b.id, state: b.state }
    },
  }
  const budget = new ResponseBudget({
    maxBytes: config.http.responseBufferBytes,
    maxWaiting: config.http.maxWaitingReads,
    waitMs: config.http.responseWaitMs,
    chunkBytes: READ_CHUNK,
    registry,
  })
  return new HttpApi(handlers, w.log.child({ component: 'api' }), { token: deps.token, budget, sendTimeoutMs: config.http.sendTimeoutMs, registry })
}

/** Builds this node read (not its own) announced as `cached`, when it keeps a frame store and announces any. */
function wireCachedAnnouncer(w: Wiring, peer: SnapswarmPeer, cluster: ClusterParts): CachedAnnouncer | undefined {
  const { config, frames } = w
  const announceMax = config.cache.frames.announceMax ?? (config.cache.sharedDir ? 0 : 64)
  if (!frames || !cluster.cachedServer || announceMax <= 0) return undefined
  const { builds, registry, log } = w
  return new CachedAnnouncer({ store: frames, builds, board: cluster.board, registry, log, server: cluster.cachedServer, announcer: peer.announcer, max: announceMax })
}

/** Finished own builds are evicted after the grace period: withdrawn from the cluster and forgotten. */
function startEviction(w: Wiring, peer: SnapswarmPeer, provider: LocalBuildProvider, cachedAnnouncer: CachedAnnouncer | undefined): NodeJS.Timeout {
  const { config } = w
  const timer = setInterval(() => {
    w.builds
      .evictFinished(config.node.pendingGraceMs)
      .then((gone) => {
        for (const id of gone) {
          peer.announcer.withdraw(id)
          provider.forget(id)
        }
        // Re-ranked by recency; an evicted own build whose frames this node read is announced cached now.
        cachedAnnouncer?.refresh()
      })
      .catch((err) => w.log.warn({ err }, 'evicting finished builds failed'))
  }, Math.min(30_000, Math.max(1000, config.node.pendingGraceMs / 2)))
  timer.unref()
  return timer
}

/**
 * The frames the node serves to peers: the shared directory when there is one (tracked: the node
 * serves the entries it read or wrote there), else its own bounded frame store under the data dir; none
 * when `cache.frames.maxBytes` is 0. The origin does not copy its own builds' frames: it has them locally.
 */
async function openFrameStore(config: Config, dataDir: string, builds: LocalBuilds, registry: Registry, metrics: ReadMetrics, logger: Logger): Promise<HeldFrames | undefined> {
  const { maxBytes } = config.cache.frames
  if (maxBytes === 0) return undefined
  const sharedDir = config.cache.sharedDir
  if (sharedDir) return new TrackedSharedCache({ dir: sharedDir, maxBytes, registry, metrics, logger })
  const dir = join(dataDir, 'frames')
  await mkdir(dir, { recursive: true })
  return FrameStore.open({ dir, maxBytes, registry, logger, accept: (id) => builds.get(id) === undefined })
}
