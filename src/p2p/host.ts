/**
 * The narrow view of a libp2p node that the peer protocols need (dependencies as
 * narrow interfaces). Peers are named by their peer id string, so no libp2p type leaks past src/p2p;
 * streams are opaque `RawStream`s that only wire/stream.ts operates on.
 */
import type { RawStream } from './wire/stream.ts'

export type PeerEvent = { type: 'connect' | 'disconnect'; peer: string }

export interface PeerHost {
  readonly peerId: string
  /** Serve `protocol`; the per-connection stream limits are set deliberately (constants.ts). */
  handle(protocol: string, handler: (stream: RawStream, remotePeer: string) => void): Promise<void>
  unhandle(protocol: string): Promise<void>
  /** A negotiated stream to `peer` (dialling it if needed); throws PeerStreamError if impossible. */
  openStream(peer: string, protocol: string, signal: AbortSignal): Promise<RawStream>
  connectedPeers(): string[]
  /** 'connect' on the first connection to a peer, 'disconnect' when its last one closes. */
  onPeerEvent(listener: (ev: PeerEvent) => void): () => void
}
