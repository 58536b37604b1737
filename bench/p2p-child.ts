/**
 * The serving process of bench/p2p-throughput.ts: a snapswarm peer serving `sizeMiB` of random
 * (incompressible, like compressed frames) bytes as frames, and a raw node:net server sending the
 * same bytes to each connection, for the baseline. Prints one JSON line with its addresses, then
 * serves until killed.
 */
import { createCipheriv, createSecretKey, randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FrameRange } from '../src/p2p/content/index.ts'
import { createSnapswarmPeer } from '../src/p2p/index.ts'

interface ChildConfig {
  sizeMiB: number
  noiseCrypto: 'node' | 'default'
  clusterKey?: string
  coalesceWrites?: boolean
  /** Hex key of the sealed-TCP ceiling server (see sealedTcp in p2p-throughput.ts). */
  sealKey: string
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as ChildConfig
const data = randomBytes(cfg.sizeMiB * 1024 * 1024)

const provider = {
  getHeader: async () => ({ status: 'NOT_AVAILABLE' as const }),
  getBlob: async () => ({ status: 'NOT_AVAILABLE' as const }),
  getFrames: async (_b: string, _k: string, _codec: unknown, ranges: readonly FrameRange[]) => ({
    status: 'OK' as const,
    batch: { frame: async (i: number) => data.subarray(ranges[i].startC, ranges[i].startC + ranges[i].sizeC) },
  }),
}

const dataDir = await mkdtemp(join(tmpdir(), 'snapswarm-bench-child-'))
// The bench ends this process with SIGTERM: its peer identity directory goes with it.
process.once('SIGTERM', () => {
  rmSync(dataDir, { recursive: true, force: true })
  process.exit(0)
})
const peer = await createSnapswarmPeer({
  dataDir,
  provider,
  noiseCrypto: cfg.noiseCrypto,
  clusterKey: cfg.clusterKey ? Buffer.from(cfg.clusterKey) : undefined,
  coalesceWrites: cfg.coalesceWrites,
})
await peer.start()

const tcp = createServer((sock) => {
  sock.on('error', () => {})
  sock.end(data)
})
await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve))
const port = (tcp.address() as { port: number }).port

// The ceiling of any encrypted transport in JS here: the same bytes as Noise-sized ChaCha20-Poly1305
// messages (2-byte length, ciphertext, tag; 8-byte counter nonce) written straight to a socket, corked
// per 16 messages: no handshake, no muxer, no framing objects, no copies. Read by sealedTcp() in the bench.
const SEAL_MSG = 65535 - 16
const sealKey = createSecretKey(Buffer.from(cfg.sealKey, 'hex'))
const sealed = createServer((sock) => {
  sock.on('error', () => {})
  const nonce = Buffer.alloc(12)
  let off = 0
  let n = 0
  const pump = (): void => {
    while (off < data.byteLength) {
      sock.cork()
      for (let k = 0; k < 16 && off < data.byteLength; k++) {
        const msg = data.subarray(off, Math.min(off + SEAL_MSG, data.byteLength))
        off += msg.byteLength
        nonce.writeUInt32LE(n++, 4)
        const c = createCipheriv('chacha20-poly1305', sealKey, nonce, { authTagLength: 16 })
        const len = Buffer.allocUnsafe(2)
        len.writeUInt16BE(msg.byteLength + 16)
        sock.write(len)
        sock.write(c.update(msg))
        c.final()
        sock.write(c.getAuthTag())
      }
      sock.uncork()
      if (sock.writableNeedDrain) return void sock.once('drain', pump)
    }
    sock.end()
  }
  pump()
})
await new Promise<void>((resolve) => sealed.listen(0, '127.0.0.1', resolve))
const sealedPort = (sealed.address() as { port: number }).port

process.stdout.write(`${JSON.stringify({ addrs: peer.addrs(), peerId: peer.peerId, tcpPort: port, sealedPort })}\n`)
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0))
