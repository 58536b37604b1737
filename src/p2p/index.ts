/**
 * The peer layer's public surface (docs/ARCHITECTURE.md, "Wire protocols"). The daemon builds one `SnapswarmPeer` and uses:
 * - `client` (PeerClient): getHeader / getFrames / getBlob from a named peer, with deadlines and
 *   stall detection — the read path's peer source (src/read/sources/peer.ts) wraps it;
 * - `directory` (PeerDirectory): which peers announce a build, and change events (switchover);
 * - `announcer` (AnnounceService): what this node tells the cluster it can serve;
 * - `membership` (Membership): every member of the cluster, learned through any one of them and
 *   connected to (docs/ARCHITECTURE.md, "Membership");
 * - `provider` (PeerContentProvider, passed in): what this node serves to peers.
 * No libp2p type crosses this module; peers are peer id strings.
 */
import type { Registry } from 'prom-client'
import type { Logger } from '../obs/log.ts'
import { type AnnounceOptions, AnnounceService } from './announce/service.ts'
import { PeerDirectory } from './announce/directory.ts'
import { PeerClient, type PeerClientOptions } from './content/client.ts'
import type { PeerContentProvider } from './content/index.ts'
import { ContentServer, type ContentServerOptions } from './content/server.ts'
import { Membership, type MembershipOptions } from './membership.ts'
import { createPeerNode, type PeerNode, type PeerNodeOptions } from './node.ts'

export interface SnapswarmPeerOptions extends PeerNodeOptions {
  provider: PeerContentProvider
  server?: Omit<ContentServerOptions, 'registry' | 'logger'>
  client?: Omit<PeerClientOptions, 'registry'>
  announce?: Omit<AnnounceOptions, 'logger'>
  membership?: Omit<MembershipOptions, 'logger' | 'maxPeers' | 'warnIntervalMs'>
  /** Connected peers at most (members are not dialled beyond it); default MAX_MEMBERS. */
  maxPeers?: number
  /** Metrics of the node, server and client (the same registry as libp2p's own). */
  registry?: Registry
  logger?: Logger
}

export interface SnapswarmPeer {
  readonly peerId: string
  readonly node: PeerNode
  readonly client: PeerClient
  readonly server: ContentServer
  readonly directory: PeerDirectory
  readonly announcer: AnnounceService
  readonly membership: Membership
  /** Listening addresses with /p2p/<id>: what other nodes put in their bootstrap list. */
  addrs(): string[]
  start(): Promise<void>
  /** Withdraw announcements, stop serving (in-flight requests reset), close connections. */
  stop(): Promise<void>
}

/** Wire node, server, client, directory and announcer; handlers are registered before listening starts. */
export async function createSnapswarmPeer(opts: SnapswarmPeerOptions): Promise<SnapswarmPeer> {
  const node = await createPeerNode({ ...opts, maxConnections: opts.maxConnections ?? (opts.maxPeers === undefined ? undefined : opts.maxPeers + 64) })
  const client = new PeerClient(node, { ...opts.client, registry: opts.registry })
  const server = new ContentServer(node, opts.provider, { ...opts.server, registry: opts.registry, logger: opts.logger })
  // Only what a connected peer announces counts: a departed node's builds are never offered. The set
  // follows connect/disconnect events, so the read path's lookups cost no libp2p call.
  const connected = new Set<string>()
  node.onPeerEvent((ev) => (ev.type === 'connect' ? connected.add(ev.peer) : connected.delete(ev.peer)))
  const directory = new PeerDirectory({ isLive: (peer) => connected.has(peer) })
  const announcer = new AnnounceService(node, directory, { ...opts.announce, logger: opts.logger })
  const membership = new Membership(node, { ...opts.membership, maxPeers: opts.maxPeers, warnIntervalMs: opts.warnIntervalMs, registry: opts.registry, logger: opts.logger })
  return {
    peerId: node.peerId,
    node,
    client,
    server,
    directory,
    announcer,
    membership,
    addrs: () => node.addrs(),
    async start() {
      await server.start()
      await announcer.start()
      await membership.start()
      await node.start()
    },
    async stop() {
      await membership.stop()
      await announcer.stop()
      await server.stop()
      client.close()
      await node.stop()
    },
  }
}

export { allowListGater, readClusterKey, writeClusterKey } from './admission.ts'
export type { AnnounceOptions } from './announce/service.ts'
export { AnnounceService } from './announce/service.ts'
export type { DirectoryChange, PeerEntry } from './announce/directory.ts'
export { PeerDirectory } from './announce/directory.ts'
export type * from './content/index.ts'
export { ContentServer, PeerClient } from './content/index.ts'
export * from './constants.ts'
export * from './errors.ts'
export type { PeerHost } from './host.ts'
export { type MemberInfo, Membership, type MembershipOptions } from './membership.ts'
export { createPeerNode, PeerNode, type PeerNodeOptions, tuneGcForBulkTransfer } from './node.ts'
export { nodeNoiseCrypto } from './noise-crypto.ts'
export type { AnnouncedState, BuildAnnouncement } from './wire/messages.ts'
