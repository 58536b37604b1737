/**
 * The serving process of bench/p2p-throughput.ts: a snapswarm peer serving `sizeMiB` of random
 * (incompressible, like compressed frames) bytes as frames, and a raw node:net server sending the
 * same bytes to each connection, for the baseline. Prints one JSON line with its addresses, then
 * serves until killed.
 */
import { randomBytes } from 'node:crypto'
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

const peer = await createSnapswarmPeer({
  dataDir: await mkdtemp(join(tmpdir(), 'snapswarm-bench-child-')),
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

process.stdout.write(`${JSON.stringify({ addrs: peer.addrs(), peerId: peer.peerId, tcpPort: port })}\n`)
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0))
