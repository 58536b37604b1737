/**
 * Swarm figures (suite `swarm`): one origin and 8, then 16 reader `snapswarm node` processes on
 * 127.0.0.1 (bench/lib/swarm.ts), every reader reading the same 32 MiB VM-like build at the same
 * moment, each range compared with the source. For a star (readers bootstrap to the origin) and a
 * chain (each to the one before it), with the build pending on the origin and pushed to the bucket
 * (readers cold). Figures, one run each:
 * - origin egress (pending) and bucket egress (uploaded), as ratios to the build's compressed size
 *   (target ≤ 1.5: each frame leaves the origin or the bucket about once);
 * - the busiest reader's egress to peers, the same ratio (target ≤ 3);
 * - p50 / p99 of the readers' completion times (from the common start to the last verified byte);
 * - pending: p50 / p99 of the announcement's propagation (the origin's API saying `pending` to each
 *   reader's saying so; 20 ms polls; announcements every 300 ms in this config).
 * BENCH_SWARM_READERS (default "8,16") and BENCH_SWARM_MIB (default 32) scale it. A case that fails
 * (a reader never sees the build, a wrong byte) is reported and fails the suite at the end.
 */
import { pathToFileURL } from 'node:url'
import { type BuildMode, type SwarmReadResult, type Topology, egressRatios, quantile, startSwarm } from './lib/swarm.ts'
import { emit } from './common.ts'

export async function swarmBench(): Promise<void> {
  const counts = (process.env.BENCH_SWARM_READERS ?? '8,16').split(',').map(Number)
  const mib = Number(process.env.BENCH_SWARM_MIB ?? 32)
  const failed: string[] = []
  for (const readers of counts) {
    for (const topology of ['star', 'chain'] as const) {
      const swarm = await startSwarm({ readers, topology, prefix: 'bench-swarm' }).catch((err: Error) => {
        failed.push(`swarm_${topology}_${readers}_readers: start: ${err.message.split('\n')[0]}`)
        console.error(`# ${topology} of ${readers} readers did not start: ${err.message.split('\n')[0]}`)
        return null
      })
      if (!swarm) continue
      try {
        for (const mode of ['pending', 'uploaded'] as const) {
          const name = `swarm_${topology}_${readers}_readers_${mode}`
          try {
            const build = await swarm.build(mib, mode, readers * 10 + (mode === 'pending' ? 1 : 2))
            emitRead(name, mode, topology, await swarm.readAll(build, { timeoutMs: 300_000 }))
          } catch (err) {
            failed.push(`${name}: ${(err as Error).message.split('\n')[0]}`)
            console.error(`# ${name} failed: ${(err as Error).message.split('\n')[0]}`)
          }
        }
      } finally {
        await swarm.close()
      }
    }
  }
  if (failed.length > 0) throw new Error(`swarm bench: ${failed.length} case(s) failed:\n${failed.join('\n')}`)
}

function emitRead(name: string, mode: BuildMode, topology: Topology, r: SwarmReadResult): void {
  const e = egressRatios(r)
  const c = r.build.compressedBytes
  if (mode === 'pending') emit(`${name}_origin_egress`, r.originServed, 'bytes', c, '<= 1.5')
  else emit(`${name}_storage_egress`, r.storageBytes, 'bytes', c, '<= 1.5')
  // Informative in the other mode: the origin serves an uploaded build too, the bucket a pending one never.
  if (mode === 'uploaded') emit(`${name}_origin_egress`, r.originServed, 'bytes', c)
  emit(`${name}_busiest_reader_egress`, e.maxReader * c, 'bytes', c, '<= 3')
  if (r.build.announceMs) {
    emit(`${name}_announce_p50`, quantile(r.build.announceMs, 0.5), 'ms', null)
    emit(`${name}_announce_p99`, quantile(r.build.announceMs, 0.99), 'ms', null)
  }
  const ms = r.readers.flatMap((x) => (x.ms === null ? [] : [x.ms]))
  emit(`${name}_completion_p50`, quantile(ms, 0.5), 'ms', null)
  emit(`${name}_completion_p99`, quantile(ms, 0.99), 'ms', null)
  console.error(`# ${topology} ${mode}: ${r.checkedBytes} bytes checked against the source, 0 wrong`)
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await swarmBench()
