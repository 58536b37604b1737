/**
 * A swarm on this machine, for the scale test and `BENCH=swarm`: one origin and N reader `snapswarm
 * node` processes on 127.0.0.1 sharing a file:// bucket, wired as a star (every reader bootstraps to
 * the origin only) or a chain (each reader to the one before it, the first to the origin).
 *
 * A build is either paused on the origin and kept pending (its upload crawls), or pushed straight to
 * the bucket with `snapswarm push` (uploaded; no node holds any of it: readers are cold). Then every
 * reader reads the whole build at the same moment through its HTTP API, in ranges of its own shuffled
 * order, and every range is compared with the source. Egress comes from each node's metrics, as
 * deltas over the read: bytes sent to peers (`snapswarm_peer_served_bytes_total{protocol="frames"}`)
 * and stored bytes fetched per source (`snapswarm_frame_bytes_fetched_total`); the bucket's egress is
 * the readers' `source="storage"` sum.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { randomUUID } from 'node:crypto'
import { writeVmData } from '../../src/util/vmdata.ts'
import { runCli } from './cli.ts'
import { rng } from './rng.ts'
import { type NodeProc, getJson, pause, startNode } from './procs.ts'

const MiB = 1024 * 1024
const CORRUPT_PRELOAD = fileURLToPath(new URL('./corrupt-serve.ts', import.meta.url))

export type Topology = 'star' | 'chain'
export type BuildMode = 'pending' | 'uploaded'

export interface SwarmOptions {
  readonly readers: number
  readonly topology: Topology
  /** Readers (by index) that flip a byte in every frame they send to peers (bench/lib/corrupt-serve.ts). */
  readonly corrupt?: readonly number[]
  /** Config merged into every node's config file. */
  readonly config?: Record<string, unknown>
  /** Temp dir prefix: `snapswarm-{prefix}-XXXXXX` (removed by close()). */
  readonly prefix?: string
}

export interface SwarmBuild {
  readonly id: string
  readonly data: Buffer
  readonly mode: BuildMode
  /** Bytes of the stored (compressed) data object: what the egress ratios are against. */
  readonly compressedBytes: number
  /**
   * Pending builds: ms from the origin saying `pending` to each reader saying so (its announcement
   * reaching the reader, as seen by polling both APIs every 20 ms).
   */
  readonly announceMs?: number[]
}

/** One node's counters (cumulative). */
export interface NodeCounters {
  /** Frame bytes this node sent to peers. */
  readonly served: number
  /** Stored bytes this node fetched, per source (`peer`, `storage`, ...). */
  readonly fetched: Record<string, number>
  /** Frames that failed verification, per source. */
  readonly verifyFailures: Record<string, number>
}

export interface ReaderOutcome {
  readonly index: number
  /** ms from the common start to this reader's last verified byte; null when it was killed. */
  readonly ms: number | null
  readonly killed: boolean
  /** Deltas of this reader's counters over the read (zeros when killed). */
  readonly counters: NodeCounters
}

export interface SwarmReadResult {
  readonly build: SwarmBuild
  readonly readers: ReaderOutcome[]
  /** Frame bytes the origin sent to peers during the read. */
  readonly originServed: number
  /** Bytes the readers still alive fetched from the bucket. */
  readonly storageBytes: number
  /** Verified bytes compared with the source, over all readers; wrong bytes throw. */
  readonly checkedBytes: number
}

export interface ReadOptions {
  /** Bytes per range request (default 2 MiB). */
  readonly rangeBytes?: number
  /** Range requests in flight per reader (default 2). */
  readonly concurrency?: number
  /** kill -9 this reader once the swarm has read this share of all bytes (e.g. 0.3). */
  readonly kill?: { readonly index: number; readonly atShare: number }
  /** Only these readers read (by index; default: every reader alive). */
  readonly only?: readonly number[]
  /** Bound on the whole read (default 120 s). */
  readonly timeoutMs?: number
}

export interface Swarm {
  readonly dir: string
  readonly origin: NodeProc
  readonly readers: NodeProc[]
  /** Pause (pending) or push (uploaded) a build of `mib` MiB of VM-like data; readers see it before this returns. */
  build(mib: number, mode: BuildMode, seed?: number): Promise<SwarmBuild>
  /** Every live reader reads the whole build at once; throws on any wrong byte or failed read of a reader not killed. */
  readAll(build: SwarmBuild, opts?: ReadOptions): Promise<SwarmReadResult>
  counters(node: NodeProc): Promise<NodeCounters>
  close(): Promise<void>
}

/** Start the origin and the readers (star or chain). close() kills them all and removes the dir. */
export async function startSwarm(opts: SwarmOptions): Promise<Swarm> {
  const dir = await mkdtemp(join(tmpdir(), `snapswarm-${opts.prefix ?? 'swarm'}-`))
  const bucket = pathToFileURL(join(dir, 'bucket')).href
  const config = join(dir, 'config.json')
  const nodes: NodeProc[] = []
  const close = async (): Promise<void> => {
    await Promise.allSettled(nodes.map((n) => n.kill()))
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await writeFile(config, JSON.stringify(swarmConfig(opts.config ?? {})))
    const spawn = async (name: string, extra: string[], env: NodeJS.ProcessEnv = {}): Promise<NodeProc> => {
      const n = await startNode(['--storage', bucket, '--data-dir', join(dir, name), '--config', config, ...extra], env, 60_000)
      nodes.push(n)
      return n
    }
    // The origin's upload crawls (32 KiB/s): a build paused on it stays pending through the read.
    const origin = await spawn('origin', ['--upload-rate', String(32 * 1024)])
    const readers: NodeProc[] = []
    for (let i = 0; i < opts.readers; i++) {
      const to = opts.topology === 'star' || i === 0 ? origin : readers[i - 1]
      const env = opts.corrupt?.includes(i) ? preloadEnv(CORRUPT_PRELOAD) : {}
      readers.push(await spawn(`reader-${i}`, ['--bootstrap', to.addrs[0]], env))
    }
    const swarm: Swarm = {
      dir,
      origin,
      readers,
      build: (mib, mode, seed) => makeBuild(swarm, { dir, bucket }, mib, mode, seed),
      readAll: (build, o) => readAll(swarm, build, o ?? {}),
      counters,
      close,
    }
    return swarm
  } catch (err) {
    await close()
    throw err
  }
}

/** Announcements often enough for a test (peer timeouts stay the product's), over the caller's config. */
function swarmConfig(extra: Record<string, unknown>): Record<string, unknown> {
  const base: Record<string, unknown> = {
    logLevel: 'warn',
    peers: { announceIntervalMs: 300, announceTtlMs: 3000 },
    node: { pendingGraceMs: 600_000 },
  }
  for (const [k, v] of Object.entries(extra)) {
    const b = base[k]
    base[k] = isObject(b) && isObject(v) ? { ...b, ...v } : v
  }
  return base
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function preloadEnv(path: string): NodeJS.ProcessEnv {
  const inherited = process.env.NODE_OPTIONS ? `${process.env.NODE_OPTIONS} ` : ''
  return { NODE_OPTIONS: `${inherited}--import ${path}` }
}

async function makeBuild(swarm: Swarm, where: { dir: string; bucket: string }, mib: number, mode: BuildMode, seed = 13): Promise<SwarmBuild> {
  const id = randomUUID()
  const path = join(where.dir, `memfile-${id}.raw`)
  await writeVmData(path, mib * MiB, seed)
  const data = readFileSync(path)
  let object: string
  let announceMs: number[] | undefined
  if (mode === 'pending') {
    const res = await pause(swarm.origin.api, id, { parent: null, useCase: 'pause', files: { memfile: path } })
    if (res.status !== 202) throw new Error(`pause of ${id} refused: ${res.status} ${JSON.stringify(res.body)}`)
    const pendingOn = (n: NodeProc) => async () => (await getJson(`${n.api}/v1/builds/${id}`)).body.state === 'pending'
    const pendingAt = await pollUntil(`${id} pending on the origin`, pendingOn(swarm.origin), 60_000)
    object = join(where.dir, 'origin', 'builds', id, 'memfile.zstd')
    // Every reader must know the build is pending somewhere before the read starts (all at once).
    const seenAt = await Promise.all(swarm.readers.map((r) => pollUntil(`reader ${r.api} to see ${id} pending`, pendingOn(r), 30_000)))
    announceMs = seenAt.map((t) => Math.max(0, t - pendingAt))
  } else {
    const pushed = await runCli(['push', '--storage', where.bucket, '--build-id', id, '--memfile', path], { timeoutMs: 120_000 })
    if (pushed.code !== 0) throw new Error(`push of ${id} failed (${pushed.code}): ${pushed.stderr}`)
    object = join(fileURLToPath(where.bucket), id, 'memfile.zstd')
  }
  const compressedBytes = (await stat(object)).size
  await rm(path, { force: true })
  return { id, data, mode, compressedBytes, announceMs }
}

/** Poll every 20 ms until `fn` holds; the time (performance.now()) it was first seen to hold. */
async function pollUntil(what: string, fn: () => Promise<boolean>, ms: number): Promise<number> {
  const deadline = performance.now() + ms
  for (;;) {
    if (await fn()) return performance.now()
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Scrape a node's counters from its /metrics. */
export async function counters(node: NodeProc): Promise<NodeCounters> {
  const text = await (await fetch(`${node.api}/metrics`)).text()
  return {
    served: sumOf(text, 'snapswarm_peer_served_bytes_total', 'protocol').frames ?? 0,
    fetched: sumOf(text, 'snapswarm_frame_bytes_fetched_total', 'source'),
    verifyFailures: sumOf(text, 'snapswarm_frame_verify_failures_total', 'source'),
  }
}

/** A counter's value per value of one label (other labels summed). */
function sumOf(text: string, metric: string, label: string): Record<string, number> {
  const out: Record<string, number> = {}
  const re = new RegExp(`^${metric}\\{([^}]*)\\} ([0-9.e+]+)$`, 'gm')
  for (const m of text.matchAll(re)) {
    const key = new RegExp(`${label}="([^"]*)"`).exec(m[1])?.[1] ?? ''
    out[key] = (out[key] ?? 0) + Number(m[2])
  }
  return out
}

function minus(a: NodeCounters, b: NodeCounters): NodeCounters {
  const sub = (x: Record<string, number>, y: Record<string, number>) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v - (y[k] ?? 0)]))
  return { served: a.served - b.served, fetched: sub(a.fetched, b.fetched), verifyFailures: sub(a.verifyFailures, b.verifyFailures) }
}

const ZERO: NodeCounters = { served: 0, fetched: {}, verifyFailures: {} }

function alive(n: NodeProc): boolean {
  return n.proc.exitCode === null && n.proc.signalCode === null
}

async function readAll(swarm: Swarm, build: SwarmBuild, opts: ReadOptions): Promise<SwarmReadResult> {
  const live = swarm.readers.map((r, index) => ({ r, index })).filter(({ r, index }) => alive(r) && (opts.only?.includes(index) ?? true))
  const before = await Promise.all([swarm.origin, ...live.map(({ r }) => r)].map(counters))
  const total = build.data.byteLength * live.length
  const progress = { bytes: 0, killed: new Set<number>() }
  const deadline = AbortSignal.timeout(opts.timeoutMs ?? 120_000)
  const onBytes = (n: number): void => {
    progress.bytes += n
    const k = opts.kill
    if (k && !progress.killed.has(k.index) && progress.bytes >= k.atShare * total) {
      progress.killed.add(k.index)
      swarm.readers[k.index].proc.kill('SIGKILL')
    }
  }
  const t0 = performance.now()
  const ms = await Promise.all(
    live.map(async ({ r, index }) => {
      try {
        await readWhole(r.api, build, opts, index, onBytes, deadline)
        return performance.now() - t0
      } catch (err) {
        if (progress.killed.has(index) && !(err instanceof WrongBytesError)) return null
        throw new Error(`reader ${index} (${r.api}) failed: ${(err as Error).message}\n${r.stderr().slice(-4000)}`)
      }
    }),
  )
  const after = await Promise.all([swarm.origin, ...live.map(({ r }) => r)].map((n) => (alive(n) ? counters(n) : Promise.resolve(null))))
  const readers = live.map(({ index }, i): ReaderOutcome => {
    const a = after[i + 1]
    return { index, ms: ms[i], killed: progress.killed.has(index), counters: a ? minus(a, before[i + 1]) : ZERO }
  })
  return {
    build,
    readers,
    originServed: after[0] ? after[0].served - before[0].served : 0,
    storageBytes: readers.reduce((s, r) => s + (r.counters.fetched.storage ?? 0), 0),
    checkedBytes: readers.filter((r) => r.ms !== null).length * build.data.byteLength,
  }
}

/** Read the whole build in ranges of a shuffled order (seeded by the reader), comparing each with the source. */
async function readWhole(api: string, build: SwarmBuild, opts: ReadOptions, seed: number, onBytes: (n: number) => void, signal: AbortSignal): Promise<void> {
  const step = opts.rangeBytes ?? 2 * MiB
  const size = build.data.byteLength
  const starts = shuffle([...Array(Math.ceil(size / step)).keys()], seed + 1).map((i) => i * step)
  const worker = async (): Promise<void> => {
    for (let s = starts.pop(); s !== undefined; s = starts.pop()) {
      const end = Math.min(size, s + step) - 1
      const { res, got } = await getRange(api, build.id, s, end, signal)
      if (res.status !== 206) throw new Error(`GET bytes=${s}-${end}: ${res.status} ${got.toString().slice(0, 2000)}`)
      if (!got.equals(build.data.subarray(s, end + 1))) throw new WrongBytesError(`build ${build.id}: bytes ${s}-${end} differ from the source (${got.byteLength} bytes received)`)
      onBytes(got.byteLength)
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency ?? 2 }, worker))
}

/** One range through a node's API; a failed or cut answer names the range and the cause. */
async function getRange(api: string, id: string, start: number, end: number, signal: AbortSignal): Promise<{ res: Response; got: Buffer }> {
  try {
    const res = await fetch(`${api}/v1/builds/${id}/memfile`, { headers: { range: `bytes=${start}-${end}` }, signal })
    return { res, got: Buffer.from(await res.arrayBuffer()) }
  } catch (err) {
    const cause = (err as Error & { cause?: Error }).cause
    throw new Error(`GET bytes=${start}-${end}: ${(err as Error).message}${cause ? ` (${cause.message})` : ''}`)
  }
}

/** A reader answered 206 with bytes that are not the source's: never tolerated, even from a reader later killed. */
export class WrongBytesError extends Error {}

function shuffle<T>(xs: T[], seed: number): T[] {
  const random = rng(seed)
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[xs[i], xs[j]] = [xs[j], xs[i]]
  }
  return xs
}

/** Egress figures of one read, as ratios to the build's compressed size. */
export function egressRatios(r: SwarmReadResult): { origin: number; storage: number; maxReader: number } {
  const c = r.build.compressedBytes
  return {
    origin: r.originServed / c,
    storage: r.storageBytes / c,
    maxReader: Math.max(0, ...r.readers.map((x) => x.counters.served)) / c,
  }
}

export function quantile(xs: readonly number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}
