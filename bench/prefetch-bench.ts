/**
 * Suite `prefetch`: resume at warm speed with an access trace. A VM-like working set (~20%
 * of the frames of a 1 GiB memfile, scattered, a few ms of think time between faults) is replayed on a
 * fresh node over a simulated GCS (50 ms to first byte, 100 MB/s per request), first without a trace
 * (which records one), then on a second fresh node with it. Figures: demand misses (goal: ≥ 90%
 * fewer, ratio ≤ 0.1) and time to complete the working set (goal: ≥ 3× faster, ratio ≤ 0.33), the
 * second resume against the first measured in the same run.
 *
 * BENCH_PREFETCH_MIB scales the memfile down (default 1024); BENCH_PREFETCH_THINK_MS sets the think time.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { emit } from './common.ts'
import { throttledEnv } from './lib/throttle-env.ts'

const CHILD = fileURLToPath(new URL('./prefetch-child.ts', import.meta.url))
const THROTTLE = throttledEnv(50, 100)

interface Run {
  seconds: number
  demandMisses: number
  prefetched: number
  prefetchHits: number
  storageFrames: number
}

export async function prefetchBench(): Promise<void> {
  const out = await runChild()
  const r = JSON.parse(out) as { size: number; frames: number; faults: number; thinkMs: number; first: Run; second: Run }
  console.error(`# prefetch: ${r.size / 1024 / 1024} MiB memfile, ${r.frames} frames in the working set, ${r.faults} faults, ${r.thinkMs} ms think time`)
  console.error(`# first resume ${JSON.stringify(r.first)}`)
  console.error(`# second resume ${JSON.stringify(r.second)}`)
  emit('prefetch_resume_demand_misses_with_trace', r.second.demandMisses, 'misses', r.first.demandMisses, '<= 0.1')
  emit('prefetch_resume_working_set_seconds_with_trace', r.second.seconds, 's', r.first.seconds, '<= 0.33')
  emit('prefetch_resume_prefetched_frames_used', r.second.prefetchHits, 'frames', r.second.prefetched)
}

function runChild(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD], { env: { ...process.env, ...THROTTLE }, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(out.trim().split('\n').at(-1) ?? '') : reject(new Error(`prefetch bench child exited with ${code}`))))
  })
}
