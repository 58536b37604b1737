/**
 * Cluster admission (DESIGN §8: "who may connect is a cluster decision; strangers are refused before
 * any protocol runs"), two independent mechanisms:
 * - a pre-shared network key (@libp2p/pnet): every connection is wrapped before Noise runs, so a node
 *   without the key cannot even complete the handshake. The key file is pnet's swarm key format
 *   (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits), interchangeable with go-libp2p/ipfs;
 * - an allow-list of peer ids, enforced by the connection gater right after the Noise handshake
 *   (the first moment the remote identity is proven) and before the muxer, so no stream can open.
 */
import { readFile, writeFile } from 'node:fs/promises'
import type { ConnectionGater, ConnectionProtector, PeerId } from '@libp2p/interface'
import { generateKey, preSharedKey } from '@libp2p/pnet'
import { peerIdFromString } from '@libp2p/peer-id'
import { PNET_MAX_CHUNK } from './constants.ts'
import { AdmissionConfigError } from './errors.ts'

const SWARM_KEY_RE = /^\/key\/swarm\/psk\/1\.0\.0\/\r?\n\/base16\/\r?\n[0-9a-fA-F]{64}\s*$/

/** Read and validate a swarm key file; the bytes are what `preSharedKey({ psk })` expects. */
export async function readClusterKey(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(path)
  } catch (err) {
    throw new AdmissionConfigError(`cluster key ${path}: ${(err as Error).message}`, { cause: err })
  }
  if (!SWARM_KEY_RE.test(Buffer.from(bytes).toString('latin1'))) {
    throw new AdmissionConfigError(
      `cluster key ${path}: expected a pnet swarm key ('/key/swarm/psk/1.0.0/', '/base16/', 64 hex digits), found ${bytes.byteLength} bytes that are not`,
    )
  }
  return bytes
}

/** Create a fresh random swarm key file (mode 0600): one per cluster, copied to every node. */
export async function writeClusterKey(path: string): Promise<void> {
  const key = new Uint8Array(95) // '/key/swarm/psk/1.0.0/\n/base16/\n' + 64 hex digits
  generateKey(key)
  await writeFile(path, key, { mode: 0o600, flag: 'wx' })
}

/**
 * pnet's connection protector, with its sends cut into PNET_MAX_CHUNK pieces. pnet XORs whatever the
 * layer above has queued in ONE call into the xsalsa20 WebAssembly module, whose memory is capped at
 * 64 MB: after TCP backpressure, a connection with several large responses in flight queues more than
 * that, the call throws and the whole connection dies (seen in bench/p2p-throughput.ts: streams
 * ending silently mid-frame). Bounded chunks also keep the XOR in cache.
 */
export function clusterKeyProtector(psk: Uint8Array): () => ConnectionProtector {
  const inner = preSharedKey({ psk })()
  return () => ({
    async protect(connection, options) {
      const boxed = await inner.protect(connection, options)
      ;(boxed as { maxMessageSize?: number }).maxMessageSize = PNET_MAX_CHUNK
      return boxed
    },
  })
}

/** Parse an allow-list of peer id strings; a typo must fail the start, not silently lock a peer out. */
export function parseAllowList(peers: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (const p of peers) {
    try {
      out.add(peerIdFromString(p).toString())
    } catch (err) {
      throw new AdmissionConfigError(`allow-list entry '${p}' is not a peer id`, { cause: err })
    }
  }
  return out
}

/**
 * Deny every connection whose authenticated peer id is not allowed. `self` is always allowed: the
 * node's own id is not a stranger. Dials to unlisted peers are refused before a socket is opened.
 */
export function allowListGater(allowed: ReadonlySet<string>, self: string): ConnectionGater {
  const deny = (peer: PeerId): boolean => {
    const id = peer.toString()
    return id !== self && !allowed.has(id)
  }
  return {
    denyDialPeer: deny,
    denyInboundEncryptedConnection: deny,
    denyOutboundEncryptedConnection: deny,
  }
}
