/**
 * Cluster admission ("who may connect is a cluster decision; strangers are refused before
 * any protocol runs"), two independent mechanisms:
 * - a cluster key, bound into every Noise handshake as its prologue (`clusterPrologue`); the key file
 *   keeps pnet's swarm key format (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits), so key files
 *   made for the earlier pnet-based admission (and by go-libp2p/ipfs tools) still work;
 * - an allow-list of peer ids, enforced by the connection gater right after the Noise handshake
 *   (the first moment the remote identity is proven) and before the muxer, so no stream can open.
 *
 * Why a prologue is enough (and what it does not do). Noise mixes the prologue into the handshake
 * hash `h` before the first message, and every handshake AEAD (the responder's static key and
 * payload in message 2, the initiator's in message 3) authenticates `h` as associated data. Two
 * nodes whose prologues differ therefore compute different `h`, and the first tag checked fails:
 * the initiator rejects message 2, or (if the stranger is the initiator and ignores that) the
 * responder rejects message 3. The handshake never completes, so there is no secure channel, no
 * muxer, no stream and no protocol handler — the provider is never called. The prologue is
 * SHA-256 of a domain tag and the 32 key bytes; it is never sent, and a tag failure tells an
 * observer nothing usable about a 256-bit key. Unlike pnet (XSalsa20 over every byte, in
 * WebAssembly, on top of Noise's own encryption) it costs nothing per byte: bench/p2p-throughput.ts
 * measured pnet at 2.1-2.5x the CPU per MiB of plain Noise, the prologue at 0.94-0.98x (no cost).
 *
 * Limits, accepted: a stranger can still open a TCP connection and start a handshake (the node
 * spends one handshake's X25519 and signature work on it, as it did under pnet), and a stranger
 * that initiates receives message 2, whose contents it can decrypt without checking the tag: the
 * node's Noise static key, its libp2p public key (i.e. its peer id) with the signature over the
 * static key, and its muxer list. That is public identity, not a secret (peer ids sit in bootstrap
 * lists); pnet hid even that. It learns nothing else and runs no protocol.
 */
import { createHash, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import type { ConnectionGater, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { readRegularFile } from '../util/regular-file.ts'
import { AdmissionConfigError } from './errors.ts'

const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n'
const SWARM_KEY_RE = /^\/key\/swarm\/psk\/1\.0\.0\/\r?\n\/base16\/\r?\n([0-9a-fA-F]{64})\s*$/
/** Domain separation: the same key used by some other protocol yields an unrelated prologue. */
const PROLOGUE_TAG = 'snapswarm/cluster/1'
/** A swarm key file is under 100 bytes; a bigger file is refused unread. */
const MAX_KEY_FILE_BYTES = 4096

/** Read and validate a swarm key file; pass the bytes as `clusterKey` (PeerNodeOptions). */
export async function readClusterKey(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array
  try {
    bytes = await readRegularFile(path, MAX_KEY_FILE_BYTES, 'cluster key')
  } catch (err) {
    throw new AdmissionConfigError(`cluster key ${path}: ${(err as Error).message}`, { cause: err })
  }
  if (!SWARM_KEY_RE.test(Buffer.from(bytes).toString('latin1'))) {
    throw new AdmissionConfigError(
      `cluster key ${path}: expected a swarm key ('/key/swarm/psk/1.0.0/', '/base16/', 64 hex digits), found ${bytes.byteLength} bytes that are not`,
    )
  }
  return bytes
}

/** Create a fresh random swarm key file (mode 0600): one per cluster, copied to every node. */
export async function writeClusterKey(path: string): Promise<void> {
  await writeFile(path, `${SWARM_KEY_HEADER}${randomBytes(32).toString('hex')}`, { mode: 0o600, flag: 'wx' })
}

/**
 * The Noise prologue of a cluster: SHA-256(PROLOGUE_TAG || the 32 key bytes). Derived from the
 * decoded key, not the file bytes, so line endings, hex case and trailing whitespace do not matter.
 */
export function clusterPrologue(keyFile: Uint8Array): Uint8Array {
  const m = SWARM_KEY_RE.exec(Buffer.from(keyFile).toString('latin1'))
  if (!m) throw new AdmissionConfigError('cluster key: not a swarm key (see readClusterKey)')
  return createHash('sha256').update(PROLOGUE_TAG).update(Buffer.from(m[1], 'hex')).digest()
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
 * `onDeny` hears of each refusal (the node logs it, rate-limited).
 */
export function allowListGater(allowed: ReadonlySet<string>, self: string, onDeny?: (peer: string, how: 'dial' | 'inbound' | 'outbound') => void): ConnectionGater {
  const denier = (how: 'dial' | 'inbound' | 'outbound') => (peer: PeerId): boolean => {
    const id = peer.toString()
    const denied = id !== self && !allowed.has(id)
    if (denied) onDeny?.(id, how)
    return denied
  }
  return {
    denyDialPeer: denier('dial'),
    denyInboundEncryptedConnection: denier('inbound'),
    denyOutboundEncryptedConnection: denier('outbound'),
  }
}
