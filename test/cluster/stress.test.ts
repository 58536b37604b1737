/**
 * Rapid pause/resume cycles on a 3-node in-process cluster (real libp2p over TCP on
 * 127.0.0.1, file:// storage). Each cycle pauses a new layer of a chain on a random node — often while
 * its parent is still pending on another node — and random concurrent reads on random nodes race the
 * uploads and header switchovers. Node 1 serves pending frames in the upload's geometry, node 2 as LZ4
 * and node 3 raw, so both switchover cases happen. Every byte read is compared with a model.
 * STRESS_CYCLES sets the count (CI: 200; `npm run stress`: 2000).
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { SnapswarmNode } from '../../src/node/daemon.ts'
import { createLogger, silentLogger } from '../../src/obs/log.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type NodeProc, waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const CYCLES = Number(process.env.STRESS_CYCLES ?? 200)
const BLOCK = 2 * 1024 * 1024 // memfile block size: dirty ranges are whole blocks
const SIZE = 4 * BLOCK
const READS_PER_CYCLE = 3

let env: TestNodes
let dir: string
const nodes: SnapswarmNode[] = []
const gen = new VmDataGenerator(77)
let seed = 12345
const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31
  return seed % n
}

before(async () => {
  env = await testNodes({
    prefix: 'stress',
    config: {
      compression: { default: { partSize: 5 * 1024 * 1024 } },
      peers: { announceIntervalMs: 200, announceTtlMs: 5000, requestTimeoutMs: 5000, stallTimeoutMs: 2000 },
      switchover: { finalHeaderPollMs: 20_000 },
    },
  })
  dir = env.dir
  const codecs = ['upload', 'lz4', 'none'] as const
  for (let i = 0; i < 3; i++) {
    const node = { bootstrap: i === 0 ? [] : [nodes[0].addrs()[0]], uploadRateBytesPerSec: 3_000_000 }
    nodes.push(await env.startTestNode(`n${i}`, { config: { node }, logger: process.env.STRESS_LOG ? createLogger('warn') : silentLogger, pendingCodec: codecs[i] }))
  }
  // Wait for the full mesh: node 2 and 3 dial node 1; announcements reach everyone through it.
  const deadline = Date.now() + 15_000
  while (nodes[0].peer.node.connectedPeers().length < 2) {
    if (Date.now() > deadline) throw new Error('cluster did not form')
    await new Promise((r) => setTimeout(r, 50))
  }
  for (const n of nodes.slice(1)) await n.peer.node.dial(nodes[3 - nodes.indexOf(n)].addrs()[0], AbortSignal.timeout(5000)).catch(() => {})
})

after(async () => {
  await env?.close()
})

/** How long a read retries a build that is not visible yet before failing (a bound a hang would hit). */
const VISIBLE_WITHIN_MS = 60_000

interface Build {
  id: string
  content: Buffer
}

async function readChecked(node: SnapswarmNode, b: Build, stats: { reads: number; bytes: number; retries: number }): Promise<void> {
  const start = rand(SIZE - 1)
  const end = Math.min(SIZE - 1, start + rand(3 * 1024 * 1024))
  // Far above the time a build takes to become visible, even on a loaded machine: a bound, not a target.
  const deadline = Date.now() + VISIBLE_WITHIN_MS
  for (;;) {
    const res = await fetch(`${node.apiUrl}/v1/builds/${b.id}/memfile`, { headers: { range: `bytes=${start}-${end}` }, signal: AbortSignal.timeout(60_000) })
    const body = Buffer.from(await res.arrayBuffer())
    if (res.status === 206) {
      assert.ok(body.equals(b.content.subarray(start, end + 1)), `wrong bytes: build ${b.id} range ${start}-${end} on ${node.peerId.slice(-6)}`)
      stats.reads++
      stats.bytes += body.byteLength
      return
    }
    // Only "not visible yet" is retried: a build still being framed by its origin, or not yet announced.
    const text = body.toString()
    assert.match(text, /still being framed|no peer serves it/, `read failed: ${res.status} ${text}`)
    assert.ok(Date.now() < deadline, `build ${b.id} did not become readable in ${VISIBLE_WITHIN_MS} ms: ${text}`)
    stats.retries++
    await new Promise((r) => setTimeout(r, 20))
  }
}

test(`rapid pause/resume: ${CYCLES} cycles of layered pauses with concurrent reads and switchovers return 0 wrong bytes`, async () => {
  const chain: Build[] = []
  const stats = { reads: 0, bytes: 0, retries: 0 }
  const inflight: Promise<void>[] = []
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const parent = chain.length > 0 && cycle % 25 !== 0 ? chain[chain.length - 1] : null
    const id = randomUUID()
    const origin = nodes[rand(3)]
    let content: Buffer
    let file: Buffer
    const body: Record<string, unknown> = { useCase: 'pause' }
    if (!parent) {
      content = gen.next(SIZE)
      file = content
      body.parent = null
    } else {
      content = Buffer.from(parent.content)
      const blocks = [...new Set([rand(4), rand(4)])].sort()
      file = Buffer.concat(blocks.map((_blk) => gen.next(BLOCK)))
      for (const [i, blk] of blocks.entries()) file.copy(content, blk * BLOCK, i * BLOCK, (i + 1) * BLOCK)
      body.parent = parent.id
      body.dirty = { memfile: blocks.map((blk) => [blk * BLOCK, (blk + 1) * BLOCK]) }
    }
    const path = join(dir, `${id}.mem`)
    await writeFile(path, file)
    body.files = { memfile: path }
    const res = await fetch(`${origin.apiUrl}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    assert.equal(res.status, 202, await res.text())
    const build = { id, content }
    chain.push(build)
    // Resume right away, on other nodes, while the upload runs; plus reads of older builds.
    for (let r = 0; r < READS_PER_CYCLE; r++) {
      const target = r === 0 ? build : chain[rand(chain.length)]
      inflight.push(readChecked(nodes[rand(3)], target, stats))
    }
    if (inflight.length >= 12) await Promise.all(inflight.splice(0))
  }
  await Promise.all(inflight)
  // Every build ends up uploaded, and after its switchover reads still match.
  for (const b of chain.slice(-5)) {
    await readChecked(nodes[rand(3)], b, stats)
  }
  assert.equal(stats.reads, CYCLES * READS_PER_CYCLE + 5)
  console.log(`stress: ${stats.reads} reads, ${(stats.bytes / 2 ** 20).toFixed(0)} MiB compared, ${stats.retries} not-yet-visible retries, 0 wrong bytes`)
})

/**
 * The same cycles with real node processes, and origins killed with SIGKILL mid-upload (a bounded
 * count, STRESS_KILLS, default 6): the killed origin restarts on its data dir and ports, resumes its
 * unfinished uploads, and every read anywhere returns the model's bytes or an error status, never a
 * wrong byte; every build read eventually succeeds.
 */
const KILLS = Number(process.env.STRESS_KILLS ?? 6)
const KILL_CYCLES = Number(process.env.STRESS_KILL_CYCLES ?? CYCLES)

test(`rapid pause/resume with origins killed -9 mid-upload: ${KILL_CYCLES} cycles, ${KILLS} kills, 0 wrong bytes`, async () => {
  const procEnv = await testNodes({
    prefix: 'stress-kill',
    clusterKey: true,
    config: {
      compression: { default: { partSize: 5 * 1024 * 1024 } },
      peers: { announceIntervalMs: 200, announceTtlMs: 3000, requestTimeoutMs: 3000, stallTimeoutMs: 1500 },
      switchover: { finalHeaderPollMs: 20_000 },
      node: { pendingGraceMs: 600_000 },
    },
  })
  const pdir = procEnv.dir
  const codecs = ['upload', 'lz4', 'none']
  const procs: NodeProc[] = []
  const killed: NodeProc[] = [] // their logs, for a failure's message
  const argsOf: string[][] = []
  const start = async (i: number, bootstrap: string[]) => {
    // A restart keeps the node's ports (and its data dir: the same name), so the others' bootstrap addresses stay valid.
    const pinned = argsOf[i] ?? []
    const args = ['--upload-rate', '1000000', '--pending-codec', codecs[i], ...pinned, ...bootstrap.flatMap((a) => ['--bootstrap', a])]
    procs[i] = await procEnv.startTestNode(`p${i}`, { process: true, args })
    argsOf[i] = ['--listen', procs[i].addrs[0].replace(/\/p2p\/.*$/, ''), '--api', new URL(procs[i].api).host]
  }
  try {
    await start(0, [])
    await start(1, [procs[0].addrs[0]])
    await start(2, [procs[0].addrs[0], procs[1].addrs[0]])
    const stats = { reads: 0, bytes: 0, retries: 0, kills: 0 }
    const readOk = async (b: Build) => {
      const s = rand(SIZE - 1)
      const e = Math.min(SIZE - 1, s + rand(3 * 1024 * 1024))
      const deadline = Date.now() + 2 * VISIBLE_WITHIN_MS // origins are killed and restarted meanwhile
      for (;;) {
        const api = procs[rand(3)].api
        let status = 0
        let body = Buffer.alloc(0)
        try {
          const res = await fetch(`${api}/v1/builds/${b.id}/memfile`, { headers: { range: `bytes=${s}-${e}` }, signal: AbortSignal.timeout(60_000) })
          status = res.status
          body = Buffer.from(await res.arrayBuffer())
        } catch {
          status = -1 // a node being killed, or a response cut on an error: never data
        }
        if (status === 206) {
          assert.ok(body.equals(b.content.subarray(s, e + 1)), `wrong bytes: build ${b.id} range ${s}-${e}`)
          stats.reads++
          stats.bytes += body.byteLength
          return
        }
        // An origin is down or restarting: an error status with a stable code, retried; never a 2xx with other bytes.
        if (status > 0) assert.match(body.toString(), /"error":"ERR_[A-Z_]+"/, `read answered ${status}: ${body.toString()}`)
        if (Date.now() >= deadline) {
          // What the nodes logged about this build: the failing step and its error.
          const said = [...procs, ...killed].flatMap((p, i) => p.stderr().split('\n').filter((l) => l.includes(b.id) && !l.includes('"msg":"request failed"')).slice(-6).map((l) => `node ${i}: ${l}`))
          assert.fail(`build ${b.id} did not become readable in ${2 * VISIBLE_WITHIN_MS} ms: ${status} ${body.toString()}\n${said.join('\n')}`)
        }
        stats.retries++
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    const chain: Build[] = []
    const inflight: Promise<void>[] = []
    const killEvery = Math.max(1, Math.floor(KILL_CYCLES / Math.max(1, KILLS)))
    let killDue = false
    for (let cycle = 0; cycle < KILL_CYCLES; cycle++) {
      if (cycle % killEvery === killEvery - 1 && stats.kills < KILLS) killDue = true
      // A build whose origin is to be killed is a root (SIZE bytes, seconds of upload at 1 MB/s): a
      // child's one or two dirty blocks can finish uploading before its state is first seen.
      const parent = chain.length > 0 && cycle % 10 !== 0 && !killDue ? chain[chain.length - 1] : null
      const id = randomUUID()
      const o = rand(3)
      let content: Buffer
      let file: Buffer
      const body: Record<string, unknown> = { useCase: 'pause' }
      if (!parent) {
        content = gen.next(SIZE)
        file = content
        body.parent = null
      } else {
        content = Buffer.from(parent.content)
        const blocks = [...new Set([rand(4), rand(4)])].sort()
        file = Buffer.concat(blocks.map(() => gen.next(BLOCK)))
        for (const [i, blk] of blocks.entries()) file.copy(content, blk * BLOCK, i * BLOCK, (i + 1) * BLOCK)
        body.parent = parent.id
        body.dirty = { memfile: blocks.map((blk) => [blk * BLOCK, (blk + 1) * BLOCK]) }
      }
      const path = join(pdir, `${id}.mem`)
      await writeFile(path, file)
      body.files = { memfile: path }
      const res = await fetch(`${procs[o].api}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      assert.equal(res.status, 202, await res.text())
      const build = { id, content }
      chain.push(build)
      for (let r = 0; r < READS_PER_CYCLE; r++) inflight.push(readOk(r === 0 ? build : chain[rand(chain.length)]))
      if (killDue) {
        // Kill the origin while this build is pending (its upload runs at 1 MB/s), then restart it.
        const state = await waitFor('the build framed on its origin', async () => {
          const r = await fetch(`${procs[o].api}/v1/builds/${id}`)
          const st = r.status === 200 ? ((await r.json()) as { state: string }).state : 'framing'
          return st !== 'framing' && st
        })
        // Already uploaded (a loaded machine saw it late): the kill moves on to the next cycle's build.
        if (state !== 'uploaded') {
          assert.equal(state, 'pending', 'the origin is killed mid-upload')
          killDue = false
          await procs[o].kill()
          killed.push(procs[o])
          stats.kills++
          await start(o, procs.filter((_, i) => i !== o).map((p) => p.addrs[0]))
        }
      }
      if (inflight.length >= 12) await Promise.all(inflight.splice(0))
    }
    await Promise.all(inflight)
    // Every build ends uploaded; after the switchovers reads still match.
    for (const b of chain) {
      await waitFor(`${b.id} uploaded`, async () => {
        const r = await fetch(`${procs[0].api}/v1/builds/${b.id}`)
        return r.status === 200 && ((await r.json()) as { state: string }).state === 'uploaded'
      }, 60_000)
    }
    for (const b of chain.slice(-5)) await readOk(b)
    assert.equal(stats.kills, Math.min(KILLS, Math.floor(KILL_CYCLES / killEvery)))
    console.log(`stress with kills: ${stats.reads} reads, ${(stats.bytes / 2 ** 20).toFixed(0)} MiB compared, ${stats.kills} origins killed -9, ${stats.retries} retried errors, 0 wrong bytes`)
  } finally {
    await procEnv.close()
  }
})
