/**
 * Where the first cold read from a pending peer spends its time (a diagnostic, not part of `npm run
 * bench`): an origin `snapswarm node` process holds N pending copies of a 32 MiB VM-like memfile; a
 * node embedded in this process opens each (fresh build: cold chunk cache, no frame in flight) and
 * reads 4 KiB at offset 0, compared with the source. The phases are timed by wrapping the read path's
 * entry points for this process only:
 *   header   the header request to the origin (PeerClient.getHeader: stream open + request + answer)
 *   toOpen   header in hand → the build reader starts opening
 *   open     BuildReader.open (layer plans, chunk-cache files)
 *   toFrames reader open → the frames request leaves (file handle, prefetch session, fetcher, batcher)
 *   frames   the frames request → the frame is in hand and its decode starts
 *   decode   zstd decode + checksum of the 2 MiB frame
 *   after    decoded → the 4 KiB is in the caller's buffer
 * Prints the first read (a fresh process: cold code) and the median of the others, in ms.
 *
 *   node_modules/.bin/node bench/resume-phases.ts          (N=6 builds; RESUME_PHASES_N to change)
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { validateConfig } from '../src/config/load.ts'
import { getCodec } from '../src/format/codec.ts'
import { SnapswarmNode } from '../src/node/daemon.ts'
import { silentLogger } from '../src/obs/log.ts'
import { PeerClient } from '../src/p2p/index.ts'
import { BuildReader } from '../src/read/build-reader.ts'
import { writeVmData } from '../src/util/vmdata.ts'
import { startNode } from './lib/procs.ts'

type Marks = Record<string, number>
let t0 = 0
let marks: Marks = {}
const mark = (k: string): void => {
  marks[k] ??= performance.now() - t0
}

/** Time the first call of `obj[name]` in each read: `${tag}>` when it starts, `${tag}<` when it settles. */
function timed(obj: object, name: string, tag: string): void {
  const target = obj as Record<string, (...a: unknown[]) => Promise<unknown>>
  const original = target[name]
  target[name] = async function (this: unknown, ...args: unknown[]) {
    mark(`${tag}>`)
    try {
      return await original.apply(this, args)
    } finally {
      mark(`${tag}<`)
    }
  }
}

function phases(m: Marks): Marks {
  return {
    total: m.done,
    header: m['header<'] - m['header>'],
    toOpen: m['open>'] - m['header<'],
    open: m['open<'] - m['open>'],
    toFrames: m['frames>'] - m['open<'],
    frames: m['decode>'] - m['frames>'],
    decode: m['decode<'] - m['decode>'],
    after: m.done - m['decode<'],
  }
}

async function main(): Promise<void> {
  timed(PeerClient.prototype, 'getHeader', 'header')
  timed(PeerClient.prototype, 'getFrames', 'frames')
  timed(BuildReader, 'open', 'open')
  timed(getCodec('zstd'), 'decompress', 'decode')
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-phases-'))
  const rows: Marks[] = []
  try {
    const settings = { logLevel: 'warn', peers: { announceIntervalMs: 500, announceTtlMs: 5000 } }
    const configFile = join(dir, 'config.json')
    await writeFile(configFile, JSON.stringify(settings))
    const bucket = pathToFileURL(join(dir, 'bucket')).href
    const origin = await startNode(['--data-dir', join(dir, 'a'), '--storage', bucket, '--config', configFile, '--upload-rate', '65536'])
    const mem = join(dir, 'mem.raw')
    await writeVmData(mem, 32 << 20, 7)
    const ids = Array.from({ length: Number(process.env.RESUME_PHASES_N ?? 6) }, () => randomUUID())
    for (const id of ids) await postJson(`${origin.api}/v1/builds/${id}`, { parent: null, useCase: 'pause', files: { memfile: mem } })
    for (const id of ids) await until(async () => ((await (await fetch(`${origin.api}/v1/builds/${id}`)).json()) as { state?: string }).state === 'pending')
    const config = validateConfig({ ...settings, storage: bucket, node: { bootstrap: [origin.addrs[0]] } })
    const node = await SnapswarmNode.start({ config, dataDir: join(dir, 'b'), logger: silentLogger })
    try {
      const want = (await readFile(mem)).subarray(0, 4096)
      for (const id of ids) {
        await until(async () => node.peer.directory.peersFor(id).length > 0)
        marks = {}
        t0 = performance.now()
        const f = await node.openRead(id, 'memfile', undefined, { firstReadAt: 0 })
        const got = await f.read(0, 4096)
        mark('done')
        await f.close()
        if (!Buffer.from(got).equals(want)) throw new Error(`build ${id}: the first 4 KiB differ from the source`)
        rows.push(phases(marks))
      }
    } finally {
      await node.stop()
      await origin.stop()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  const round = (m: Marks) => JSON.stringify(Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Number(v.toFixed(1))])))
  const rest = rows.slice(1)
  const median = (k: string) => rest.map((r) => r[k]).sort((x, y) => x - y)[rest.length >> 1]
  process.stdout.write(`first read  ${round(rows[0])}\n`)
  if (rest.length > 0) process.stdout.write(`median rest ${round(Object.fromEntries(Object.keys(rows[0]).map((k) => [k, median(k)])))}\n`)
}

async function postJson(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (res.status !== 202) throw new Error(`POST ${url}: ${res.status} ${await res.text()}`)
}

async function until(cond: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

await main()
process.exit(0)
