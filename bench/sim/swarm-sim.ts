/**
 * The swarm beyond this machine (suite `sim`; alone: `node bench/sim/swarm-sim.ts`): the
 * discrete-event simulation of bench/sim/engine.ts driving the product's selection code
 * (bench/sim/policy.ts) for
 * - 100 and 1,000 nodes resuming one 4 GiB build at once, each in its own frame order, pending on its
 *   origin and uploaded to the bucket, and pending with every node in the same order (the worst case
 *   for spreading): origin and bucket egress as ratios to the compressed size, completion p50 / p99 /
 *   max, beside the same cluster without the swarm (`direct`: every node fetches every frame itself);
 *   and, as a what-if that is not the product, the same-order case with a plan whose peers all
 *   answered BUSY made again after a back-off instead of going upstream;
 * - Kraken's published scenario: 2,600 hosts pull one 3 GB blob, each host capped at 300 MB/s;
 *   completion p50 / p99 beside Kraken's 10 s / 18 s.
 *
 * The model (engine.ts): 10 Gbit/s NICs (300 MB/s in Kraken's scenario), 0.25 ms one-way latency, the
 * origin keeping a quarter of its NIC for its own upload, a bucket answering each request after 50 ms
 * at 100 MB/s (what bench/throttle.ts simulates for the cluster bench), 2 MiB frames at the compressed
 * size VM-like data has in `BENCH=swarm` (0.263 of the raw size; a Kraken blob is taken as
 * incompressible, in 4 MiB pieces), and the receiver's CPU per MiB measured on this machine
 * (`cluster_peer_lazy_read_cpu_reader`, bench/RESULTS.md: 4.5 ms per MiB, 2 cores).
 * SIM_ONLY=100,1000,kraken picks scenarios; SIM_POLICIES=swarm,direct picks policies.
 */
import { pathToFileURL } from 'node:url'
import { emit } from '../common.ts'
import { type NetModel, type SimResult, type SimScenario, simulate } from './engine.ts'
import { directPolicy, swarmPolicy } from './policy.ts'

const MiB = 1024 * 1024
const GBIT = 1e9 / 8
/** Compressed / raw size of the VM-like build in BENCH=swarm (8.82 MB for 32 MiB). */
const COMPRESSION = 0.263
/** Receiver CPU per MiB of frame (decode, verify, cache write), this machine: bench/RESULTS.md. */
const CPU_MS_PER_MIB = 4.5

const DATACENTER: NetModel = {
  nodeBps: 10 * GBIT,
  originBps: 0.75 * 10 * GBIT,
  latencyMs: 0.25,
  storageFirstByteMs: 50,
  storageRequestBps: 100e6,
  cpuMsPerMiB: CPU_MS_PER_MIB,
  cores: 2,
}

function resume4GiB(nodes: number, mode: 'pending' | 'uploaded'): SimScenario {
  const frameBytesU = 2 * MiB
  return {
    nodes,
    frames: (4 * 1024 * MiB) / frameBytesU,
    frameBytesU,
    frameBytesC: Math.round(frameBytesU * COMPRESSION),
    mode,
    net: DATACENTER,
    window: 16,
    serveCap: 64,
    sample: 16,
    startSpreadMs: 100,
    order: 'shuffled',
    seed: nodes,
  }
}

/** Kraken's published benchmark: 2,600 hosts, one 3 GB blob, 300 MB/s per host; the blob starts in the bucket. */
function kraken(): SimScenario {
  const piece = 4 * MiB
  const cap = 300e6
  return {
    nodes: 2600,
    frames: Math.ceil(3e9 / piece),
    frameBytesU: piece,
    frameBytesC: piece,
    mode: 'uploaded',
    net: { ...DATACENTER, nodeBps: cap, originBps: cap },
    window: 16,
    serveCap: 64,
    sample: 16,
    startSpreadMs: 100,
    order: 'shuffled',
    seed: 2600,
  }
}

function emitRun(name: string, s: SimScenario, r: SimResult, wallMs: number): void {
  const compressed = s.frames * s.frameBytesC
  const ms = [...r.completionMs].sort((a, b) => a - b)
  const q = (p: number): number => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]
  if (s.mode === 'pending') emit(`${name}_origin_egress`, r.originBytes, 'bytes', compressed, '<= 1.5')
  else emit(`${name}_storage_egress`, r.storageBytes, 'bytes', compressed, '<= 1.5')
  emit(`${name}_busiest_reader_egress`, r.maxReaderServed, 'bytes', compressed, '<= 3')
  emit(`${name}_completion_p50`, q(0.5) / 1000, 's', null)
  emit(`${name}_completion_p99`, q(0.99) / 1000, 's', null)
  emit(`${name}_completion_max`, ms[ms.length - 1] / 1000, 's', null)
  console.error(`# ${name}: ${r.events} events, ${r.busy} BUSY answers, ${r.storageRequests} bucket requests, simulated in ${(wallMs / 1000).toFixed(1)} s`)
}

export async function swarmSim(): Promise<void> {
  const only = (process.env.SIM_ONLY ?? '100,1000,kraken').split(',')
  const policies = (process.env.SIM_POLICIES ?? 'swarm,direct').split(',')
  const runs: { name: string; s: SimScenario; swarmOnly?: boolean }[] = []
  for (const nodes of [100, 1000]) {
    if (!only.includes(String(nodes))) continue
    for (const mode of ['pending', 'uploaded'] as const) runs.push({ name: `sim_${nodes}_nodes_4GiB_${mode}`, s: resume4GiB(nodes, mode) })
    // The worst case for spreading: every node reads the frames in the same order at the same moment.
    const sameOrder: SimScenario = { ...resume4GiB(nodes, 'pending'), order: 'sequential' }
    runs.push({ name: `sim_${nodes}_nodes_4GiB_pending_same_order`, s: sameOrder })
    // What-if (not the product): a plan whose peers all answered BUSY is made again after 5 ms, up to 20 times.
    runs.push({ name: `sim_${nodes}_nodes_4GiB_pending_same_order_busy_retry`, s: { ...sameOrder, busyRetry: { times: 20, backoffMs: 5 } }, swarmOnly: true })
  }
  if (only.includes('kraken')) runs.push({ name: 'sim_kraken_2600_hosts_3GB', s: kraken() })
  for (const { name, s, swarmOnly } of runs) {
    for (const p of policies.filter((x) => !swarmOnly || x === 'swarm')) {
      const policy = p === 'direct' ? directPolicy : swarmPolicy(s.nodes)
      const t0 = performance.now()
      const r = simulate(s, policy)
      emitRun(`${name}_${policy.name}`, s, r, performance.now() - t0)
      if (name.includes('kraken')) {
        const ms = [...r.completionMs].sort((a, b) => a - b)
        emit(`${name}_${policy.name}_p50_vs_kraken`, ms[Math.floor(0.5 * ms.length)] / 1000, 's', 10, '(Kraken: 10 s)')
        emit(`${name}_${policy.name}_p99_vs_kraken`, ms[Math.min(ms.length - 1, Math.floor(0.99 * ms.length))] / 1000, 's', 18, '(Kraken: 18 s)')
      }
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await swarmSim()
