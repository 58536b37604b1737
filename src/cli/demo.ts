/**
 * `snapswarm demo` (the README's run command): a local 3-node cluster on 127.0.0.1 with a filesystem
 * bucket. It generates a VM-like snapshot, pauses it on node 1, resumes it on node 2 while the upload
 * is still pending (frames come from node 1 over libp2p), watches node 2 switch over to the final
 * header in storage when the upload completes, reads it again on node 3 from the cluster and storage,
 * verifies every byte against the source, and prints a report. Exits 0 only if every check passed.
 */
import { createHash, randomUUID } from 'node:crypto'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { validateConfig } from '../config/load.ts'
import { SnapswarmNode } from '../node/daemon.ts'
import { createLogger, type Logger, silentLogger } from '../obs/log.ts'
import { writeVmData } from '../util/vmdata.ts'
import { writeClusterKey } from '../p2p/admission.ts'
import { parse, UsageError } from './args.ts'
import { ProgressBar, formatBytes } from './progress.ts'

const MiB = 1024 * 1024
/** The generated memfile is written to the temp dir and read three times: 64 GiB is past any sensible demo. */
export const DEMO_MAX_SIZE_MIB = 65_536

/** `--size-mib`: a whole number of MiB from 1 to DEMO_MAX_SIZE_MIB; anything else is a usage error, refused before any work. */
export function demoSizeMiB(raw: unknown): number {
  if (raw === undefined) return 256
  const n = typeof raw === 'string' && /^[0-9]+$/.test(raw) ? Number(raw) : Number.NaN
  if (!Number.isSafeInteger(n) || n < 1 || n > DEMO_MAX_SIZE_MIB) {
    throw new UsageError(`--size-mib: expected a whole number of MiB from 1 to ${DEMO_MAX_SIZE_MIB}, found '${String(raw)}'`)
  }
  return n
}

interface Check {
  name: string
  ok: boolean
  detail: string
}

type Say = (s: string) => void
type CheckFn = (name: string, ok: boolean, detail: string) => void
type ReadResult = Awaited<ReturnType<typeof readAll>>

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { 'size-mib': { type: 'string' }, keep: { type: 'boolean' }, verbose: { type: 'boolean' } }, 0)
  const size = demoSizeMiB(values['size-mib']) * MiB
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-demo-'))
  const say: Say = (s) => process.stdout.write(`${s}\n`)
  const checks: Check[] = []
  const check: CheckFn = (name, ok, detail) => {
    checks.push({ name, ok, detail })
    say(`  ${ok ? '✔' : '✘'} ${name}: ${detail}`)
  }
  const nodes: SnapswarmNode[] = []
  try {
    say(`snapswarm demo: 3 nodes on 127.0.0.1, bucket file://${join(dir, 'bucket')}`)
    await startCluster(dir, size, values.verbose ? createLogger('info') : silentLogger, nodes, say)
    const sourceSha = await generateSnapshot(join(dir, 'memfile.raw'), size, say)
    const id = randomUUID()
    const reads = await pauseAndResume(nodes, id, join(dir, 'memfile.raw'), size, sourceSha, check, say)
    await report(nodes, id, size, (await stat(join(dir, 'bucket', id, 'memfile.zstd'))).size, reads, say)
  } catch (err) {
    check('demo ran to the end', false, (err as Error).message)
  } finally {
    await Promise.allSettled(nodes.map((n) => n.stop()))
    if (!values.keep) await rm(dir, { recursive: true, force: true })
  }
  const failed = checks.filter((c) => !c.ok)
  say(failed.length === 0 ? `\nall ${checks.length} checks passed` : `\n${failed.length} of ${checks.length} checks FAILED`)
  return failed.length === 0 ? 0 : 1
}

/** Three nodes sharing a cluster key and a filesystem bucket, each pushed to `nodes` as it starts (the caller stops them). */
async function startCluster(dir: string, size: number, logger: Logger, nodes: SnapswarmNode[], say: Say): Promise<void> {
  const key = join(dir, 'cluster.key')
  await writeClusterKey(key)
  for (let i = 0; i < 3; i++) {
    const config = validateConfig({
      storage: pathToFileURL(join(dir, 'bucket')).href,
      node: {
        clusterKeyFile: key,
        bootstrap: i === 0 ? [] : [nodes[0].addrs()[0]],
        // Node 1's uploads are throttled so that node 2 resumes while the build is still pending.
        uploadRateBytesPerSec: i === 0 ? Math.max(4 * MiB, Math.floor(size / 10)) : 0,
      },
      peers: { announceIntervalMs: 500, announceTtlMs: 5000 },
    })
    const node = await SnapswarmNode.start({ config, dataDir: join(dir, `node${i + 1}`), logger, pendingCodec: i === 0 ? 'lz4' : 'upload' })
    nodes.push(node)
    say(`  node ${i + 1}: ${node.peerId}  api ${node.apiUrl}`)
  }
  await waitUntil(() => nodes[0].peer.node.connectedPeers().length === 2, 15_000, 'the cluster to form')
}

/** A VM-like memfile of `size` bytes at `memfile`; returns its SHA-256 (hex), what every read is checked against. */
async function generateSnapshot(memfile: string, size: number, say: Say): Promise<string> {
  const gen = new ProgressBar('generate snapshot', size)
  await writeVmData(memfile, size, 2026)
  gen.done()
  const source = createHash('sha256')
  const { createReadStream } = await import('node:fs')
  for await (const chunk of createReadStream(memfile)) source.update(chunk as Buffer)
  const sourceSha = source.digest('hex')
  say(`generated a VM-like memfile: ${formatBytes((await stat(memfile)).size)}, sha256 ${sourceSha.slice(0, 16)}…`)
  return sourceSha
}

/** Pause on node 1, resume on node 2 while pending, wait for the switchover, read again on node 2 and cold on node 3. */
async function pauseAndResume(nodes: SnapswarmNode[], id: string, memfile: string, size: number, sourceSha: string, check: CheckFn, say: Say) {
  const res = await fetch(`${nodes[0].apiUrl}/v1/builds/${id}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ parent: null, useCase: 'pause', files: { memfile } }),
  })
  check('pause accepted on node 1', res.status === 202, `POST /v1/builds/${id} → ${res.status}`)
  await waitUntil(async () => (await info(nodes[1], id)).state === 'pending', 30_000, 'the pending announcement')
  say('node 1 announced the build as pending; resuming it on node 2 while the upload runs…')

  const resume = await readAll(nodes[1], id, size, 'resume on node 2')
  const stateAfter = (await info(nodes[1], id)).state
  check('resume on node 2 returned every byte', resume.sha === sourceSha, `sha256 ${resume.sha.slice(0, 16)}…`)
  check(
    'resume ran while the upload was pending',
    resume.stateAtStart === 'pending',
    `build state when the read started: ${resume.stateAtStart}, at its first byte: ${resume.stateAtFirstByte}; after the read: ${stateAfter}`,
  )

  say('waiting for node 1 to finish its upload and node 2 to switch over…')
  await waitUntil(async () => (await info(nodes[1], id)).state === 'uploaded', 300_000, 'the upload')
  await waitUntil(async () => (await switchovers(nodes[1])) > 0, 30_000, 'node 2 to switch over')
  const switched = await switchovers(nodes[1])
  check('node 2 switched over to the final header from storage', switched > 0, `${switched} switchover(s)`)
  const again = await readAll(nodes[1], id, size, 'read again on node 2')
  check('after the switchover node 2 reads the final build', again.sha === sourceSha, `sha256 ${again.sha.slice(0, 16)}…`)
  const third = await readAll(nodes[2], id, size, 'cold read on node 3')
  check('node 3 reads it cold from the cluster and storage', third.sha === sourceSha, `sha256 ${third.sha.slice(0, 16)}…`)
  return { resume, again, third }
}

/** The figures: compression, time to first byte and throughput of each read, bytes by source per node. */
async function report(nodes: SnapswarmNode[], id: string, size: number, stored: number, reads: { resume: ReadResult; again: ReadResult; third: ReadResult }, say: Say): Promise<void> {
  const { resume, again, third } = reads
  const header = await (await fetch(`${nodes[2].apiUrl}/v1/builds/${id}`)).json() as Record<string, unknown>
  say('\nreport')
  say(`  snapshot              ${formatBytes(size)} → ${formatBytes(stored)} stored (zstd, ratio ${(size / stored).toFixed(2)}×)`)
  say(`  resume while pending  first byte ${resume.ttfbMs.toFixed(0)} ms, ${(size / resume.secs / 1e6).toFixed(0)} MB/s`)
  say(`  after switchover      ${(size / again.secs / 1e6).toFixed(0)} MB/s (node 2, local cache)`)
  say(`  cold on node 3        first byte ${third.ttfbMs.toFixed(0)} ms, ${(size / third.secs / 1e6).toFixed(0)} MB/s`)
  for (const [i, n] of nodes.entries()) say(`  node ${i + 1} bytes by source  ${await bytesBySource(n)}`)
  say(`  build state           ${JSON.stringify(header.state)} readable from ${JSON.stringify(header.readableFrom)}`)
}

async function info(node: SnapswarmNode, id: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${node.apiUrl}/v1/builds/${id}`)
  return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : {}
}

async function readAll(node: SnapswarmNode, id: string, size: number, label: string) {
  const stateAtStart = String((await info(node, id)).state ?? 'unknown')
  let stateAtFirstByte = 'unknown'
  const bar = new ProgressBar(label, size)
  const hash = createHash('sha256')
  const t0 = performance.now()
  let ttfbMs = 0
  let got = 0
  const res = await fetch(`${node.apiUrl}/v1/builds/${id}/memfile`, { headers: { range: `bytes=0-${size - 1}` } })
  if (res.status !== 206) throw new Error(`${label}: HTTP ${res.status} ${await res.text()}`)
  for await (const chunk of res.body!) {
    if (got === 0) {
      ttfbMs = performance.now() - t0
      stateAtFirstByte = String((await info(node, id)).state ?? 'unknown')
    }
    hash.update(chunk)
    got += chunk.byteLength
    bar.update(got)
  }
  bar.done()
  return { sha: hash.digest('hex'), secs: (performance.now() - t0) / 1000, ttfbMs, stateAtStart, stateAtFirstByte }
}

async function switchovers(node: SnapswarmNode): Promise<number> {
  const m = /snapswarm_header_switchovers_total (\d+)/.exec(await node.registry.metrics())
  return m ? Number(m[1]) : 0
}

async function bytesBySource(node: SnapswarmNode): Promise<string> {
  const text = await node.registry.metrics()
  const parts: string[] = []
  for (const m of text.matchAll(/snapswarm_frame_bytes_fetched_total\{source="(\w+)"\} (\d+)/g)) parts.push(`${m[1]} ${formatBytes(Number(m[2]))}`)
  return parts.join(', ') || 'none fetched'
}

async function waitUntil(fn: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
