/**
 * One node of BENCH=announce in its own process (as deployed: one node per process). argv: dataDir,
 * cluster key file, then bootstrap addresses. Prints JSON lines on stdout: `{"ready",peerId,addrs}`,
 * then `{"seen",peer,buildId,state,t}` for every directory change and `{"announced",buildId,state,t}`
 * when it announces; `t` is wall-clock ms with sub-ms precision (performance.timeOrigin + now), so
 * times from processes on one machine compare. Reads commands on stdin, one JSON line each:
 * `{"announce":{buildId,state}}`, `{"withdraw":buildId}`, `{"peers":true}` (answers `{"peers",connected}`).
 */
import { createInterface } from 'node:readline'
import { readClusterKey } from '../src/p2p/admission.ts'
import { createSnapswarmPeer, type PeerContentProvider } from '../src/p2p/index.ts'

const [dataDir, keyFile, ...bootstrap] = process.argv.slice(2)
const now = (): number => performance.timeOrigin + performance.now()
const out = (o: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(o)}\n`)

/** Serves nothing: the bench measures announcements, not content. */
const nothing: PeerContentProvider = {
  getHeader: async () => ({ status: 'NOT_AVAILABLE' }),
  getFrames: async () => ({ status: 'NOT_AVAILABLE' }),
  getBlob: async () => ({ status: 'NOT_AVAILABLE' }),
}

const peer = await createSnapswarmPeer({
  dataDir,
  provider: nothing,
  clusterKey: await readClusterKey(keyFile),
  bootstrap,
  membership: { intervalMs: 1000 },
  announce: { intervalMs: 5000, ttlMs: 20_000 },
})
peer.directory.subscribe((c) => {
  if (c.current) out({ event: 'seen', peer: c.peer, buildId: c.buildId, state: c.current, t: now() })
})
await peer.start()
out({ event: 'ready', peerId: peer.peerId, addrs: peer.addrs(), t: now() })

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as { announce?: { buildId: string; state: 'pending' | 'uploaded' }; withdraw?: string; peers?: boolean }
  if (cmd.announce) {
    out({ event: 'announced', ...cmd.announce, t: now() })
    peer.announcer.announce({ ...cmd.announce, memfileSize: 1 << 30, rootfsSize: 0 })
  }
  if (cmd.withdraw) peer.announcer.withdraw(cmd.withdraw)
  if (cmd.peers) out({ event: 'peers', connected: peer.node.connectedPeers() })
}
await peer.stop()
