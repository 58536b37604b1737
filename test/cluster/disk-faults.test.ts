/**
 * Disk faults on every file a node owns, with real node processes over real TCP: an origin A pauses a
 * build and is killed (-9) mid-upload; a reader B has read the whole build while it was pending (its
 * chunk cache and frame store hold it) and is stopped. Then, for each fault — flip 16 bytes, truncate
 * to half, delete — a fresh copy of both data directories and of the bucket gets that fault in EVERY
 * file (pause records, local framed copies, chunk cache data and presence records, frame store
 * entries), both nodes restart on the copies, and:
 * - every read on B and on a cold node C equals the source, or fails with an error status: never a
 *   206 with a wrong byte;
 * - the build ends `uploaded` or `failed` (never stuck), and when it is uploaded, storage holds the
 *   source's bytes exactly (a cold node reads them).
 * The peer identity key is left out of the loop (a node whose key is damaged refuses to start: tested
 * last, on its own).
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { cp, lstat, readdir, readFile, stat, truncate, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { IDENTITY_FILE } from '../../src/p2p/constants.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type NodeProc, getJson, pause, waitFor } from '../../bench/lib/procs.ts'
import { CLUSTER_TIMINGS, type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
const SIZE = 12 * MiB

let env: TestNodes
let dir: string
let data: Buffer
let id: string

async function node(dataDir: string, bucket: string, extra: string[] = []): Promise<NodeProc> {
  return env.startTestNode(dataDir, { process: true, dataDir, storage: pathToFileURL(bucket).href, args: extra })
}

async function filesUnder(root: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name))
  }
  return out.sort()
}

type Fault = 'flip' | 'truncate' | 'delete'

async function damage(path: string, fault: Fault): Promise<void> {
  const size = (await stat(path)).size
  if (fault === 'delete') return unlink(path)
  if (fault === 'truncate') return truncate(path, Math.floor(size / 2))
  if (size === 0) return
  const bytes = await readFile(path)
  const at = Math.max(0, Math.floor(size / 2) - 8)
  for (let i = at; i < Math.min(size, at + 16); i++) bytes[i] ^= 0x5a
  await writeFile(path, bytes)
}

/** Read [start, end] through a node's API: the bytes when the answer is 206 and whole, else null. */
async function readOrError(api: string, start: number, end: number): Promise<Buffer | null> {
  try {
    const res = await fetch(`${api}/v1/builds/${id}/memfile`, { headers: { range: `bytes=${start}-${end}` }, signal: AbortSignal.timeout(60_000) })
    const body = Buffer.from(await res.arrayBuffer())
    if (res.status !== 206) {
      assert.ok(res.status >= 400, `a read answered ${res.status}`)
      return null
    }
    return body
  } catch {
    return null // the response was cut: the client saw an error, not data
  }
}

function assertNoWrongByte(got: Buffer | null, start: number, end: number, where: string): boolean {
  if (got === null) return false
  assert.equal(got.byteLength, end - start + 1, `${where}: a 206 with ${got.byteLength} bytes for ${end - start + 1}`)
  assert.ok(got.equals(data.subarray(start, end + 1)), `${where}: wrong bytes in ${start}-${end}`)
  return true
}

async function buildState(api: string): Promise<string | undefined> {
  const r = await getJson(`${api}/v1/builds/${id}`).catch(() => undefined)
  return r?.status === 200 ? (r.body.state as string) : undefined
}

before(async () => {
  env = await testNodes({ prefix: 'disk-faults', clusterKey: true, config: CLUSTER_TIMINGS })
  dir = env.dir
  data = new VmDataGenerator(31).next(SIZE)
  const src = join(dir, 'memfile')
  await writeFile(src, data)
  id = randomUUID()

  // The scene every fault starts from: A killed mid-upload, B holding the build in its caches.
  const bucket = join(dir, 'bucket')
  const a = await node(join(dir, 'a'), bucket, ['--upload-rate', '100000'])
  const b = await node(join(dir, 'b'), bucket, ['--bootstrap', a.addrs[0]])
  const accepted = await pause(a.api, id, { files: { memfile: src } })
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body))
  await waitFor('the build pending on B', async () => (await buildState(b.api)) === 'pending')
  assert.ok(assertNoWrongByte(await readOrError(b.api, 0, SIZE - 1), 0, SIZE - 1, 'B before the faults'))
  assert.equal(await buildState(a.api), 'pending', 'the upload is still running when A is killed')
  await a.kill()
  assert.equal(await b.stop(), 0)
})

after(async () => {
  await env?.close()
})

for (const [fault, who] of (['flip', 'truncate', 'delete'] as const).flatMap((f) => (['origin', 'origin-copy', 'reader', 'both'] as const).map((w) => [f, w] as const))) {
  test(`${fault} ${who === 'both' ? 'every file the origin and the reader own' : who === 'origin-copy' ? "the origin's local copy (not its pause record)" : `every file the ${who} owns`} while stopped: every byte read equals the source or the read fails clearly`, async () => {
    const round = join(dir, `${fault}-${who}`)
    const [aDir, bDir, bucket] = [join(round, 'a'), join(round, 'b'), join(round, 'bucket')]
    // Sockets (a killed node's NBD socket) cannot be copied and are no data: leave them out.
    const files = { recursive: true, filter: async (src: string) => !(await lstat(src)).isSocket() }
    await cp(join(dir, 'a'), aDir, files)
    await cp(join(dir, 'b'), bDir, files)
    await cp(join(dir, 'bucket'), bucket, files)
    const damaged: string[] = []
    for (const root of who.startsWith('origin') ? [aDir] : who === 'reader' ? [bDir] : [aDir, bDir]) {
      for (const f of await filesUnder(root)) {
        if (f.endsWith(IDENTITY_FILE)) continue
        // 'origin-copy': the local framed copy and the frame store, with the pause record intact.
        if (who === 'origin-copy' && f.endsWith('state.json')) continue
        await damage(f, fault)
        damaged.push(f.slice(round.length + 1))
      }
    }
    if (who !== 'reader') assert.ok(damaged.some((f) => f.startsWith('a/builds/') && !f.endsWith('state.json')), `A's pause record and framed copy were damaged: ${damaged.join(', ')}`)
    if (who === 'reader' || who === 'both') assert.ok(damaged.some((f) => f.startsWith('b/cache/')) && damaged.some((f) => f.startsWith('b/frames/')), `B's chunk cache and frame store were damaged: ${damaged.join(', ')}`)

    const a = await node(aDir, bucket)
    const b = await node(bDir, bucket, ['--bootstrap', a.addrs[0]])
    const c = await node(join(round, 'c'), bucket, ['--bootstrap', a.addrs[0]])
    // Reads while A resumes (or fails) its upload: right bytes or an error, never wrong bytes.
    const ranges: [number, number][] = [[0, SIZE - 1], [5 * MiB + 100, 7 * MiB], [SIZE - 4096, SIZE - 1]]
    let whole = 0
    for (const [s, e] of ranges) {
      if (assertNoWrongByte(await readOrError(b.api, s, e), s, e, `B after ${fault}`)) whole++
      if (assertNoWrongByte(await readOrError(c.api, s, e), s, e, `C after ${fault}`)) whole++
    }
    const final = await waitFor('the build to end uploaded or failed on A', async () => {
      const s = await buildState(a.api)
      return s === 'uploaded' || s === 'failed' ? s : undefined
    }, 120_000)
    if (final === 'uploaded') {
      // Storage holds the source exactly: a node that never saw the build reads all of it.
      const d = await node(join(round, 'd'), bucket)
      assert.ok(assertNoWrongByte(await readOrError(d.api, 0, SIZE - 1), 0, SIZE - 1, `a cold node after ${fault}`), 'an uploaded build reads whole from storage')
      await d.stop()
    }
    let after = 0
    for (const [s, e] of ranges) if (assertNoWrongByte(await readOrError(b.api, s, e), s, e, `B after the build ended ${final}`)) after++
    if (who === 'reader' || who === 'origin-copy') {
      // The origin was untouched: its upload resumes, and the reader repairs its caches by refetching.
      assert.equal(final, 'uploaded')
      assert.equal(after, ranges.length, 'a reader whose caches rotted reads every range whole once the build is uploaded')
    }
    whole += after
    const reason = final === 'failed' ? ((await getJson(`${a.api}/v1/builds/${id}`)).body.error as string) : ''
    // A failed build says why; the figures show what the round exercised.
    if (final === 'failed') assert.ok(reason, 'a failed build carries its reason')
    console.log(`${fault} ${who}: ${damaged.length} files damaged (${damaged.join(' ')}), build ${final}${reason ? ` (${reason})` : ''}, ${whole}/${ranges.length * 3} reads whole and exact, the rest errors`)
    await Promise.all([a.stop(), b.stop(), c.stop()])
  })
}

test('a damaged peer identity key stops the node at start with a clear error', async () => {
  const round = join(dir, 'identity')
  await cp(join(dir, 'b'), round, { recursive: true })
  await damage(join(round, IDENTITY_FILE), 'truncate')
  await assert.rejects(node(round, join(dir, 'bucket')), /ERR_FORMAT/)
})
