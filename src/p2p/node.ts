/**
 * The libp2p node of a snapswarm peer: TCP, Noise, yamux (docs/ARCHITECTURE.md, "Wire protocols"), cluster admission (admission.ts),
 * a persistent identity (identity.ts), bootstrap peers with reconnect (bootstrap.ts), and libp2p's
 * own metrics in the caller's prom-client registry. It implements `PeerHost`, the only surface the
 * protocols see; nothing outside src/p2p imports libp2p.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Connection, Libp2p, MultiaddrConnection, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { setFlagsFromString } from 'node:v8'
import { createLibp2p } from 'libp2p'
import type { Registry } from 'prom-client'
import { type Logger, silentLogger } from '../obs/log.ts'
import { allowListGater, clusterPrologue, parseAllowList } from './admission.ts'
import { type BackoffOptions, Bootstrapper } from './bootstrap.ts'
import { MAX_INBOUND_STREAMS, MAX_MEMBERS, MAX_OUTBOUND_STREAMS } from './constants.ts'
import { PeerStreamError } from './errors.ts'
import type { PeerEvent, PeerHost } from './host.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { nodeNoiseCrypto } from './noise-crypto.ts'
import { RateLimitedLog } from './rate-limited-log.ts'
import { writeCoalescing } from './write-coalescing.ts'

export interface PeerNodeOptions {
  /** Holds the identity key (peer.key, 0600); created on first start. */
  dataDir: string
  /** Multiaddrs to listen on; default loopback on a free port. */
  listen?: string[]
  /** Peers dialled at start and whenever their connection drops, e.g. `/ip4/10.0.0.2/tcp/7000/p2p/12D3...`. */
  bootstrap?: string[]
  /** Swarm key file bytes (`readClusterKey`): only nodes with the same key complete a handshake (admission.ts). */
  clusterKey?: Uint8Array
  /** Peer ids allowed to connect (and be dialled); absent = anyone who passes the cluster key. */
  allowPeers?: string[]
  /** libp2p's own metrics go here (one registry per node: metric names are fixed). */
  registry?: Registry
  /** Noise AEAD backend: 'node' (node:crypto throughout, default) or 'default' (the library's own). */
  noiseCrypto?: 'node' | 'default'
  /** One socket write per batch instead of one per buffer (write-coalescing.ts); default true, off only to measure it. */
  coalesceWrites?: boolean
  backoff?: BackoffOptions
  /** Connections kept at most (libp2p's connection manager); default MAX_MEMBERS plus headroom for redials. */
  maxConnections?: number
  /** Warnings about one peer or address (dial failed, handshake refused) at most once per this interval. */
  warnIntervalMs?: number
  logger?: Logger
}

export class PeerNode implements PeerHost {
  readonly peerId: string
  private readonly libp2p: Libp2p
  private readonly bootstrapper: Bootstrapper
  private readonly log: Logger

  private constructor(libp2p: Libp2p, opts: PeerNodeOptions, log: Logger) {
    this.libp2p = libp2p
    this.peerId = libp2p.peerId.toString()
    this.log = log
    const deps = {
      dial: (addr: string, signal: AbortSignal) => this.dial(addr, signal),
      isConnected: (peer: string) => this.isConnected(peer),
      onDisconnect: (fn: (peer: string) => void) => this.onPeerEvent((e) => e.type === 'disconnect' && fn(e.peer)),
    }
    // A shared bootstrap list usually names this node too: dialling oneself fails forever, so skip it.
    const others = (opts.bootstrap ?? []).filter((a) => !a.endsWith(`/p2p/${this.peerId}`))
    this.bootstrapper = new Bootstrapper(others, deps, opts.backoff, log, opts.warnIntervalMs)
  }

  /** Build the node (not started: register protocol handlers first, then `start()`). */
  static async create(opts: PeerNodeOptions): Promise<PeerNode> {
    const log = (opts.logger ?? silentLogger).child({ component: 'p2p' })
    const privateKey = await loadOrCreateIdentity(opts.dataDir, log)
    const self = peerIdFromPrivateKey(privateKey).toString()
    const refused = new RateLimitedLog(log, opts.warnIntervalMs)
    const libp2p = await createLibp2p({
      start: false,
      privateKey,
      addresses: { listen: opts.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [
        logInboundRefusals(
          noise({
            crypto: opts.noiseCrypto === 'default' ? undefined : nodeNoiseCrypto,
            // The cluster key as the Noise prologue: a node with another key (or none) fails the handshake.
            prologueBytes: opts.clusterKey ? clusterPrologue(opts.clusterKey) : undefined,
          }),
          refused,
        ),
      ],
      streamMuxers: [yamux()],
      connectionProtector: opts.coalesceWrites === false ? undefined : writeCoalescing(),
      connectionGater: opts.allowPeers
        ? allowListGater(parseAllowList(opts.allowPeers), self, (peer, how) => refused.warn(`allow:${peer}`, { peer, how }, 'refused a peer that is not on the allow-list'))
        : undefined,
      metrics: opts.registry ? prometheusMetrics({ registry: opts.registry, collectDefaultMetrics: false }) : undefined,
      // Cluster peers reconnect in bursts after a restart; libp2p's default of 5 per second per host is for the open internet.
      connectionManager: { inboundConnectionThreshold: 100, maxConnections: opts.maxConnections ?? MAX_MEMBERS + 64 },
    })
    return new PeerNode(libp2p, opts, log)
  }

  async start(): Promise<void> {
    await this.libp2p.start()
    this.bootstrapper.start()
    this.log.info({ peerId: this.peerId, addrs: this.addrs() }, 'p2p node started')
  }

  async stop(): Promise<void> {
    this.bootstrapper.stop()
    await this.libp2p.stop()
  }

  /** Listening addresses with the /p2p/<id> suffix, ready to hand to another node's `bootstrap`. */
  addrs(): string[] {
    return this.libp2p.getMultiaddrs().map((ma) => ma.toString())
  }

  /** Connect to `addr`; resolves with the remote peer id. Refused by the remote's admission rules → throws. */
  async dial(addr: string, signal?: AbortSignal): Promise<string> {
    try {
      const conn = await this.libp2p.dial(multiaddr(addr), { signal })
      return conn.remotePeer.toString()
    } catch (err) {
      throw new PeerStreamError(`dial ${addr}: ${(err as Error).message}`, { cause: err })
    }
  }

  isConnected(peer: string): boolean {
    return this.libp2p.getConnections(peerIdFromString(peer)).length > 0
  }

  connectedPeers(): string[] {
    return this.libp2p.getPeers().map((p) => p.toString())
  }

  /** Open connections, all peers together (two to one peer count twice). */
  connectionCount(): number {
    return this.libp2p.getConnections().length
  }

  async handle(protocol: string, handler: (stream: Stream, remotePeer: string) => void): Promise<void> {
    await this.libp2p.handle(protocol, (stream: Stream, conn: Connection) => handler(stream, conn.remotePeer.toString()), {
      maxInboundStreams: MAX_INBOUND_STREAMS,
      maxOutboundStreams: MAX_OUTBOUND_STREAMS,
    })
  }

  async unhandle(protocol: string): Promise<void> {
    await this.libp2p.unhandle(protocol)
  }

  async openStream(peer: string, protocol: string, signal: AbortSignal): Promise<Stream> {
    try {
      return await this.libp2p.dialProtocol(peerIdFromString(peer), protocol, { signal, maxOutboundStreams: MAX_OUTBOUND_STREAMS })
    } catch (err) {
      if (signal.aborted) throw signal.reason
      throw new PeerStreamError(`open ${protocol} to ${peer}: ${(err as Error).message}`, { cause: err })
    }
  }

  onPeerEvent(listener: (ev: PeerEvent) => void): () => void {
    const onConnect = (evt: CustomEvent): void => listener({ type: 'connect', peer: String(evt.detail) })
    const onDisconnect = (evt: CustomEvent): void => listener({ type: 'disconnect', peer: String(evt.detail) })
    this.libp2p.addEventListener('peer:connect', onConnect)
    this.libp2p.addEventListener('peer:disconnect', onDisconnect)
    return () => {
      this.libp2p.removeEventListener('peer:connect', onConnect)
      this.libp2p.removeEventListener('peer:disconnect', onDisconnect)
    }
  }
}

type EncrypterFactory = ReturnType<typeof noise>

/**
 * The accepting side of a refused handshake (another cluster key, or no snapswarm node at all) sees
 * only a failed inbound upgrade, which libp2p logs at debug level: warn instead, once per remote
 * address per interval. The dialling side's warning comes from whoever dialled (bootstrap, membership).
 */
function logInboundRefusals(factory: EncrypterFactory, refused: RateLimitedLog): EncrypterFactory {
  return (components) => {
    const inner = factory(components)
    const secureInbound: typeof inner.secureInbound = async (conn, options) => {
      try {
        return await inner.secureInbound(conn, options)
      } catch (err) {
        const from = (conn as Partial<MultiaddrConnection>).remoteAddr?.toString() ?? 'unknown'
        refused.warn(`inbound:${from.replace(/\/tcp\/\d+$/, '')}`, { from, err: (err as Error).message }, 'refused an inbound handshake (another cluster key, or not a cluster node)')
        throw err
      }
    }
    return { protocol: inner.protocol, secureOutbound: inner.secureOutbound.bind(inner), secureInbound }
  }
}

/**
 * Process-wide GC tuning for peer transfers; the daemon calls it once at startup (a library must not
 * flip V8 flags on its own). Every byte through Noise is a fresh ArrayBuffer (node:crypto cannot
 * encrypt in place), and by default V8 forces a full mark-compact per 64 MB of such memory: about a
 * third of the CPU of a transfer (bench/p2p-throughput.ts, `_gcflag` variants). Counting it in the
 * global heap limit instead cut CPU per MiB by 20-35 % for ~100 MB more peak RSS per process.
 */
export function tuneGcForBulkTransfer(): void {
  setFlagsFromString('--external-memory-accounted-in-global-limit')
}

/** Factory (like js-libp2p's `createX`): the node is created stopped. */
export function createPeerNode(opts: PeerNodeOptions): Promise<PeerNode> {
  return PeerNode.create(opts)
}
