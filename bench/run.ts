/**
 * `npm run bench`: every figure as one JSON line `{"metric","value","unit","baseline","ratio"}`.
 * Select suites with BENCH=format,read,... (default: all). Figures go to bench/RESULTS.md by hand,
 * with the machine they ran on.
 */
const suites: Record<string, () => Promise<void>> = {
  format: async () => (await import('./format-bench.ts')).formatBench(),
  header: async () => (await import('./header-bench.ts')).headerBench(),
  read: async () => (await import('./read-bench.ts')).readBench(),
  cluster: async () => (await import('./cluster-bench.ts')).clusterBench(),
  upload: async () => (await import('./upload-bench.ts')).uploadBench(),
  p2p: async () => (await import('./p2p-throughput.ts')).p2pThroughputBench(),
  prefetch: async () => (await import('./prefetch-bench.ts')).prefetchBench(),
  zeros: async () => (await import('./zeros-bench.ts')).zerosBench(),
  nbd: async () => (await import('./nbd-bench.ts')).nbdBench(),
  s3: async () => (await import('./s3-bench.ts')).s3Bench(),
  swarm: async () => (await import('./swarm-bench.ts')).swarmBench(),
  sim: async () => (await import('./sim/swarm-sim.ts')).swarmSim(),
  announce: async () => (await import('./announce-bench.ts')).announceBench(),
}

const wanted = (process.env.BENCH ?? Object.keys(suites).join(',')).split(',')
for (const name of wanted) {
  const suite = suites[name]
  if (!suite) throw new Error(`unknown bench suite '${name}'; known: ${Object.keys(suites).join(', ')}`)
  console.error(`# bench ${name}`)
  await suite()
}
