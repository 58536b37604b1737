/** The environment of a bench child process whose storage reads go through the simulated GCS of bench/throttle.ts. */
import { fileURLToPath } from 'node:url'

const PRELOAD = fileURLToPath(new URL('../throttle.ts', import.meta.url))

/** `latencyMs` to first byte and `mbps` MB/s per request on the child's storage reads (the benches use 50 ms, 100 MB/s). */
export function throttledEnv(latencyMs: number, mbps: number): NodeJS.ProcessEnv {
  const inherited = process.env.NODE_OPTIONS ? `${process.env.NODE_OPTIONS} ` : ''
  return { SNAPSWARM_BENCH_STORAGE_LATENCY_MS: String(latencyMs), SNAPSWARM_BENCH_STORAGE_MBPS: String(mbps), NODE_OPTIONS: `${inherited}--import ${PRELOAD}` }
}
