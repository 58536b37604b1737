/**
 * A pause's input is checked before the id is reserved: what is not a readable regular file, ranges
 * that do not fit, a record that cannot be written, all end in an error answer with nothing kept,
 * and a retry of the same id with good input (or after space is freed) is accepted. In-process
 * node over real HTTP, real files, real FIFOs and devices, and a real full filesystem.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { SnapswarmNode } from '../../src/node/daemon.ts'
import { MAX_DIRTY_RANGES, parsePauseRequest } from '../../src/origin/pause-input.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { getJson, pause, readRange, waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
let env: TestNodes
let dir: string
let node: SnapswarmNode
const gen = new VmDataGenerator(21)

/** The in-process nodes' config (the process node runs on defaults). */
const NODE_CONFIG = { node: { uploadRateBytesPerSec: 0 }, peers: { announceIntervalMs: 200, announceTtlMs: 3000 } }

async function post(n: SnapswarmNode, id: string, body: unknown): Promise<{ status: number; body: { error?: string; message?: string; state?: string } }> {
  const res = await fetch(`${n.apiUrl}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: (await res.json()) as { error?: string; message?: string } }
}

async function state(n: SnapswarmNode, id: string): Promise<string | undefined> {
  const res = await fetch(`${n.apiUrl}/v1/builds/${id}`)
  return res.status === 200 ? ((await res.json()) as { state: string }).state : undefined
}

async function readAll(n: SnapswarmNode, id: string, size: number): Promise<Buffer> {
  const res = await fetch(`${n.apiUrl}/v1/builds/${id}/memfile`)
  const body = Buffer.from(await res.arrayBuffer())
  assert.equal(res.status, 200, body.toString().slice(0, 200))
  assert.equal(body.byteLength, size)
  return body
}

before(async () => {
  env = await testNodes({ prefix: 'pause-input' })
  dir = env.dir
  node = await env.startTestNode('node', { config: NODE_CONFIG })
})

after(async () => {
  // The directory goes even when the node fails to stop (or never started): close() bounds the wait.
  await env?.close()
})

test('regression: bad pause input gets 400 with the reason and nothing reserved; the same id with good input is then accepted (item 11)', async () => {
  const data = gen.next(2 * MiB)
  const src = join(dir, 'mem-11')
  await writeFile(src, data)
  const parent = randomUUID()
  const cases: [string, unknown, RegExp][] = [
    ['missing path', { files: { memfile: join(dir, 'missing') } }, /^ERR_FILE_NOT_FOUND: files\.memfile: no such file/],
    ['a directory', { files: { memfile: dir } }, /^ERR_NOT_REGULAR_FILE: files\.memfile: expected a regular file, found a directory/],
    ['an absurd path length', { files: { memfile: `/${'a'.repeat(5000)}` } }, /^ERR_LIMIT: files\.memfile: expected a path of <= 4096 bytes, found 5001/],
    ['an inverted range', { parent, files: { memfile: src }, dirty: { memfile: [[2 * MiB, 0]] } }, /^ERR_INVALID_ARGUMENT: dirty\.memfile: a range must have start < end/],
    ['overlapping ranges', { parent, files: { memfile: src }, dirty: { memfile: [[0, MiB], [MiB / 2, 2 * MiB]] } }, /^ERR_INVALID_ARGUMENT: dirty\.memfile: ranges must be sorted and not overlap/],
    ['a huge range', { parent, files: { memfile: src }, dirty: { memfile: [[0, 2 ** 50]] } }, /^ERR_INVALID_ARGUMENT: dirty\.memfile: the ranges cover 1125899906842624 bytes but files\.memfile holds 2097152/],
    ['ranges without a parent', { files: { memfile: src }, dirty: { memfile: [[0, 2 * MiB]] } }, /^ERR_INVALID_ARGUMENT: dirty: needs a parent/],
    ['a parent without ranges', { parent, files: { memfile: src } }, /^ERR_INVALID_ARGUMENT: dirty\.memfile: required when a parent is given/],
  ]
  const id = randomUUID()
  for (const [what, body, reason] of cases) {
    const r = await post(node, id, body)
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body).slice(0, 300)}`)
    assert.match(`${r.body.error}: ${r.body.message}`, reason, what)
    assert.equal(await state(node, id), undefined, `${what}: nothing is known of the id`)
    assert.ok(!existsSync(join(dir, 'node', 'builds', id)), `${what}: nothing was written`)
  }
  const ok = await post(node, id, { files: { memfile: src } })
  assert.equal(ok.status, 202, JSON.stringify(ok.body))
  await waitFor('uploaded', async () => (await state(node, id)) === 'uploaded', 30_000)
  assert.ok((await readAll(node, id, data.byteLength)).equals(data))
})

test('regression: dirty ranges outside the parent or off its blocks get 400 before 202 when the parent is known (item 11)', async () => {
  const base = gen.next(4 * MiB)
  const baseSrc = join(dir, 'base-11')
  await writeFile(baseSrc, base)
  const parent = randomUUID()
  assert.equal((await post(node, parent, { files: { memfile: baseSrc } })).status, 202)
  await waitFor('parent uploaded', async () => (await state(node, parent)) === 'uploaded', 30_000)
  const diff = gen.next(2 * MiB)
  const src = join(dir, 'diff-11')
  await writeFile(src, diff)
  const id = randomUUID()
  const bad: [string, [number, number][], RegExp][] = [
    ['beyond the parent', [[4 * MiB, 6 * MiB]], /inside the parent's size 4194304; found 4194304-6291456/],
    ['off the block size', [[100, 2 * MiB + 100]], /not aligned to the block size 2097152/],
  ]
  for (const [what, ranges, reason] of bad) {
    const r = await post(node, id, { parent, files: { memfile: src }, dirty: { memfile: ranges } })
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`)
    assert.match(r.body.message!, reason, what)
    assert.equal(await state(node, id), undefined, what)
  }
  assert.equal((await post(node, id, { parent, files: { memfile: src }, dirty: { memfile: [[2 * MiB, 4 * MiB]] } })).status, 202)
  await waitFor('child uploaded', async () => (await state(node, id)) === 'uploaded', 30_000)
  const expected = Buffer.from(base)
  diff.copy(expected, 2 * MiB)
  assert.ok((await readAll(node, id, expected.byteLength)).equals(expected))
})

test('dirty ranges are bounded in count before they are looked at (a body within the HTTP limit cannot reach it; an in-process caller can)', () => {
  const many = Array.from({ length: MAX_DIRTY_RANGES + 1 }, (_, i): [number, number] => [i * 2, i * 2 + 1])
  assert.throws(() => parsePauseRequest({ parent: randomUUID(), files: { memfile: '/x' }, dirty: { memfile: many } }), { code: 'ERR_LIMIT', message: /dirty\.memfile: expected <= 65536 ranges, found 65537/ })
})

test('regression: FIFOs, /dev/zero and /proc files are refused before 202 and never wedge the node (item 5)', async () => {
  const fifos: string[] = []
  for (let i = 0; i < 6; i++) {
    const f = join(dir, `fifo-${i}`)
    execFileSync('mkfifo', [f])
    fifos.push(f)
  }
  const link = join(dir, 'link-to-fifo')
  await symlink(fifos[0], link)
  const special: [string, RegExp][] = [
    ...fifos.map((f): [string, RegExp] => [f, /found a FIFO/]),
    [link, /found a FIFO/],
    ['/dev/zero', /found a character device/],
    ['/proc/self/status', /found a proc pseudo-file/],
  ]
  // All at once, as the four FIFO pauses were: each is answered, none is reserved.
  const answers = await Promise.all(special.map(async ([path]) => post(node, randomUUID(), { files: { memfile: path } })))
  for (const [i, r] of answers.entries()) {
    assert.equal(r.status, 400, JSON.stringify(r.body))
    assert.equal(r.body.error, 'ERR_NOT_REGULAR_FILE')
    assert.match(r.body.message!, special[i][1])
  }
  // A blob that is a FIFO is refused the same way.
  const mem = join(dir, 'mem-5')
  const data = gen.next(MiB)
  await writeFile(mem, data)
  const withFifoBlob = await post(node, randomUUID(), { files: { memfile: mem, snapfile: fifos[1] } })
  assert.equal(withFifoBlob.status, 400)
  assert.equal(withFifoBlob.body.error, 'ERR_NOT_REGULAR_FILE')
  // The node still answers metrics, reads and pauses.
  assert.equal((await fetch(`${node.apiUrl}/metrics`)).status, 200)
  const id = randomUUID()
  assert.equal((await post(node, id, { files: { memfile: mem } })).status, 202)
  await waitFor('uploaded', async () => (await state(node, id)) === 'uploaded', 30_000)
  assert.ok((await readAll(node, id, data.byteLength)).equals(data))
})

test('regression: a node process given four FIFO pauses keeps answering reads, pauses and metrics, and SIGTERM ends it cleanly (item 5)', async () => {
  const proc = await env.startTestNode('proc-node', { process: true })
  try {
    const fifos = await Promise.all([0, 1, 2, 3].map(async (i) => {
      const f = join(dir, `proc-fifo-${i}`)
      execFileSync('mkfifo', [f])
      return f
    }))
    const answers = await Promise.all(fifos.map((f) => pause(proc.api, randomUUID(), { files: { memfile: f } })))
    for (const a of answers) assert.equal(a.body.error, 'ERR_NOT_REGULAR_FILE', JSON.stringify(a.body))
    assert.equal((await fetch(`${proc.api}/metrics`)).status, 200)
    const mem = join(dir, 'proc-mem')
    const data = gen.next(MiB)
    await writeFile(mem, data)
    const id = randomUUID()
    assert.equal((await pause(proc.api, id, { files: { memfile: mem } })).status, 202)
    await waitFor('uploaded', async () => ((await getJson(`${proc.api}/v1/builds/${id}`)).body.state === 'uploaded'), 30_000)
    const r = await readRange(proc.api, id, 'memfile', 0, data.byteLength - 1)
    assert.equal(r.status, 206, r.text)
    assert.ok(r.bytes.equals(data))
  } finally {
    // stop() sends SIGTERM and falls back to SIGKILL after 10 s: a clean exit code says SIGTERM sufficed.
    assert.equal(await proc.stop(), 0, proc.stderr().slice(-2000))
  }
})

test('files of the node itself (its data directory, directly or through a symlink) are refused before 202', async () => {
  const own = join(dir, 'node', 'own-file')
  await writeFile(own, Buffer.alloc(4096, 1))
  const link = join(dir, 'link-into-data-dir')
  await symlink(own, link)
  for (const path of [own, link]) {
    const id = randomUUID()
    const r = await post(node, id, { files: { memfile: path } })
    assert.equal(r.status, 400, JSON.stringify(r.body))
    assert.match(r.body.message!, /is inside the node's data directory or is its cluster key or API token/)
    assert.equal(await state(node, id), undefined)
  }
})

test('a build holds the bytes of the file that was checked, even when another file is renamed over the path right after 202', async () => {
  const original = gen.next(4 * MiB)
  const other = gen.next(4 * MiB)
  const src = join(dir, 'mem-swap')
  await writeFile(src, original)
  await writeFile(`${src}.other`, other)
  const id = randomUUID()
  assert.equal((await post(node, id, { files: { memfile: src } })).status, 202)
  await rename(`${src}.other`, src)
  await waitFor('uploaded', async () => (await state(node, id)) === 'uploaded', 30_000)
  assert.ok((await readAll(node, id, original.byteLength)).equals(original))
})

/** A data dir on a filesystem the test can fill: a small tmpfs when it may mount one, else null. */
function mountSmallFs(path: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', path], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

test('regression: ENOSPC while a pause is recorded releases the id and cleans what it wrote; a retry after space is freed is accepted (item 7)', async (t) => {
  const mnt = join(dir, 'small-fs')
  await mkdir(mnt)
  const mounted = mountSmallFs(mnt)
  if (!mounted && process.platform !== 'linux') return t.skip('needs a tmpfs mount (root) or /dev/full (Linux)')
  const dataDir = join(mnt, 'node')
  const n = await env.startTestNode('small-fs-node', { config: NODE_CONFIG, dataDir })
  try {
    const src = join(dir, 'mem-7')
    const data = gen.next(MiB)
    await writeFile(src, data)
    const id = randomUUID()
    const filler = join(mnt, 'filler')
    if (mounted) {
      // Fill the filesystem for real: the record's write gets ENOSPC from the kernel.
      await writeFile(filler, Buffer.alloc(8 * MiB)).catch((err) => assert.equal(err.code, 'ENOSPC'))
    } else {
      // Without a mount: the record's temporary file is /dev/full, which answers every write with ENOSPC.
      await mkdir(join(dataDir, 'builds', id), { recursive: true })
      await symlink('/dev/full', join(dataDir, 'builds', id, 'state.json.tmp'))
    }
    const r = await post(n, id, { files: { memfile: src } })
    assert.equal(r.status, 507, JSON.stringify(r.body))
    assert.equal(r.body.error, 'ERR_NO_SPACE')
    assert.match(r.body.message!, /ENOSPC/)
    assert.equal(await state(n, id), undefined, 'the id is not kept')
    assert.deepEqual(await readdir(join(dataDir, 'builds')).catch(() => []), [], 'nothing of the attempt is left')
    await rm(filler, { force: true })
    const retry = await post(n, id, { files: { memfile: src } })
    assert.equal(retry.status, 202, JSON.stringify(retry.body))
    await waitFor('uploaded', async () => (await state(n, id)) === 'uploaded', 30_000)
    assert.ok((await readAll(n, id, data.byteLength)).equals(data))
  } finally {
    try {
      await n.stop()
    } finally {
      // Lazily if busy: a mount left behind would keep the test's directory from being removed.
      if (mounted) execFileSync('umount', ['-l', mnt])
    }
  }
})
