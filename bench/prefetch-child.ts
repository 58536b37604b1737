/**
 * BENCH ONLY, run by bench/prefetch-bench.ts in its own process with the simulated GCS of
 * bench/throttle.ts, preloaded (50 ms to first byte, 100 MB/s per request on storage reads).
 *
 * A VM-like memfile (BENCH_PREFETCH_MIB, default 1024 MiB, 2 MiB zstd frames) is uploaded to a
 * file:// bucket. A fresh node (in this process, no peers) replays a VM-like working set through
 * SnapswarmNode.openRead: ~20% of the frames, scattered, three 4 KiB faults in each at random pages,
 * a few ms of guest think time between faults; every byte is checked against the source. That first
 * resume records the access trace; the node stops (storing it). A second fresh node replays the same
 * faults with the trace in the bucket. Prints one JSON line with both runs' times and counters.
 */
import { randomUUID } from 'node:crypto'
import { open, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { validateConfig } from '../src/config/load.ts'
import { SnapswarmNode } from '../src/node/daemon.ts'
import { silentLogger } from '../src/obs/log.ts'
import { openStore } from '../src/storage/url.ts'
import { uploadBuild } from '../src/upload/build-upload.ts'
import { writeVmData } from '../src/util/vmdata.ts'
import { rng } from './lib/rng.ts'
import { benchDir, MiB } from './common.ts'

const FRAME = 2 * MiB
const PAGE = 4096
const FAULTS_PER_FRAME = 3
const THINK_MS = Number(process.env.BENCH_PREFETCH_THINK_MS ?? 3)

interface Run {
  readonly seconds: number
  readonly demandMisses: number
  readonly prefetched: number
  readonly prefetchHits: number
  readonly storageFrames: number
}

/** ~20% of the frames in a random order, FAULTS_PER_FRAME random pages in each: the faults' offsets. */
function workingSet(size: number): number[] {
  const rand = rng(2026) // the same working set every run
  const frames = Array.from({ length: size / FRAME }, (_, i) => i)
  for (let i = frames.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[frames[i], frames[j]] = [frames[j], frames[i]]
  }
  const chosen = frames.slice(0, Math.max(1, Math.round(frames.length * 0.2)))
  return chosen.flatMap((f) => Array.from({ length: FAULTS_PER_FRAME }, () => f * FRAME + Math.floor(rand() * (FRAME / PAGE)) * PAGE))
}

async function counter(node: SnapswarmNode, name: string, label?: string): Promise<number> {
  const m = await node.registry.getSingleMetric(name)?.get()
  return (m?.values ?? []).filter((v) => !label || Object.values(v.labels).includes(label)).reduce((n, v) => n + v.value, 0)
}

async function resume(dir: string, bucket: string, id: string, faults: number[], source: string): Promise<Run> {
  const config = validateConfig({ storage: pathToFileURL(bucket).href, logLevel: 'silent', prefetch: { recordWindowMs: 600_000 } })
  const node = await SnapswarmNode.start({ config, dataDir: dir, logger: silentLogger })
  const src = await open(source, 'r')
  const got = Buffer.alloc(PAGE)
  const want = Buffer.alloc(PAGE)
  try {
    const t0 = performance.now()
    const f = await node.openRead(id, 'memfile')
    for (const off of faults) {
      await f.readInto(got, off)
      await src.read(want, 0, PAGE, off)
      if (!got.equals(want)) throw new Error(`page at ${off}: bytes differ from the source`)
      await new Promise((r) => setTimeout(r, THINK_MS))
    }
    const seconds = (performance.now() - t0) / 1000
    await f.close()
    return {
      seconds,
      demandMisses: await counter(node, 'snapswarm_demand_fetches_total'),
      prefetched: await counter(node, 'snapswarm_prefetch_frames_total'),
      prefetchHits: await counter(node, 'snapswarm_prefetch_hits_total'),
      storageFrames: await counter(node, 'snapswarm_read_hits_total', 'storage'),
    }
  } finally {
    await src.close()
    await node.stop() // closes the file: the first run's trace is stored here
    await rm(dir, { recursive: true, force: true })
  }
}

const size = Number(process.env.BENCH_PREFETCH_MIB ?? 1024) * MiB
const dir = benchDir('prefetch')
try {
  const bucket = join(dir, 'bucket')
  const source = join(dir, 'memfile.raw')
  await writeVmData(source, size, 2026)
  const id = randomUUID()
  const store = await openStore(pathToFileURL(bucket).href)
  try {
    await uploadBuild({ store, buildId: id, files: { memfile: source }, useCase: 'build', compression: { default: { codec: 'zstd', frameSize: FRAME } } })
  } finally {
    await store.close()
  }
  const faults = workingSet(size)
  const first = await resume(join(dir, 'node-1'), bucket, id, faults, source)
  const second = await resume(join(dir, 'node-2'), bucket, id, faults, source)
  process.stdout.write(`${JSON.stringify({ size, frames: faults.length / FAULTS_PER_FRAME, faults: faults.length, thinkMs: THINK_MS, first, second })}\n`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
