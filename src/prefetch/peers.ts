/**
 * A pending build's access trace from the peers that serve the build (its origin): the holder that
 * served us its pending header first, then the peers announcing it pending, at most a few, one at a time.
 */
import type { BuildId } from '../format/types.ts'
import type { SnapswarmPeer } from '../p2p/index.ts'

/** Peers asked at most: a trace is an optimisation, not worth a long search. */
const MAX_PEERS_ASKED = 3
/** One peer's answer waits this long at most: the file is open and being read meanwhile. */
const BLOB_TIMEOUT_MS = 5_000

export async function blobFromServingPeers(
  peer: Pick<SnapswarmPeer, 'client' | 'directory'>,
  holders: readonly string[],
  id: BuildId,
  name: string,
  signal: AbortSignal,
): Promise<Uint8Array | null> {
  const announced = peer.directory
    .peersFor(id)
    .filter((e) => e.state === 'pending')
    .map((e) => e.peer)
  for (const p of [...new Set([...holders, ...announced])].slice(0, MAX_PEERS_ASKED)) {
    signal.throwIfAborted()
    const answer = await peer.client.getBlob(p, id, name, { signal, timeoutMs: BLOB_TIMEOUT_MS }).catch(() => null)
    if (answer?.status === 'OK') return answer.bytes
  }
  return null
}
