/**
 * Zero blocks as holes on pause, with real `snapswarm node` processes and a filesystem bucket: the
 * origin frames its local copy without the zero blocks (raw, while the upload is zstd: the upload
 * frames the source again and must find the same holes), a peer reads the pending build byte-exact,
 * the stored headers map the zero blocks to the nil build (2 MiB memfile blocks, 4 KiB rootfs
 * pages), and a child paused on top with an all-zero dirty block reads zeros there, not its parent.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { Header } from '../../src/format/header.ts'
import { checkE2bAlignment } from '../../src/format/header-validate.ts'
import { resolve } from '../../src/format/mapping.ts'
import { type FileKind, NIL_BUILD_ID } from '../../src/format/types.ts'
import { loadStoredHeader } from '../../src/storage/stored-header.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { getJson, type NodeProc, pause, waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
let env: TestNodes
let dir: string
let bucket: string

before(async () => {
  env = await testNodes({ prefix: 'zero-pause', clusterKey: true, config: { peers: { announceIntervalMs: 300, announceTtlMs: 3000 }, node: { pendingGraceMs: 600_000 } } })
  dir = env.dir
  bucket = env.bucket
})

after(async () => {
  await env?.close()
})

function node(name: string, extra: string[] = []): Promise<NodeProc> {
  return env.startTestNode(name, { process: true, args: extra })
}

async function stateOn(n: NodeProc, id: string): Promise<string | undefined> {
  const r = await getJson(`${n.api}/v1/builds/${id}`)
  return r.status === 200 ? (r.body as { state?: string }).state : undefined
}

async function readAll(n: NodeProc, id: string, kind: FileKind): Promise<Buffer> {
  const res = await fetch(`${n.api}/v1/builds/${id}/${kind}`)
  assert.equal(res.status, 200, `${kind} of ${id}: ${res.status}`)
  return Buffer.from(await res.arrayBuffer())
}

async function storedHeader(id: string, kind: FileKind): Promise<Header> {
  const store = await FsStore.open(bucket)
  try {
    return await loadStoredHeader(store, id, kind)
  } finally {
    await store.close()
  }
}

const nilBytes = (h: Header) => h.mappings.filter((m) => m.buildId === NIL_BUILD_ID).reduce((n, m) => n + m.length, 0)

test('pause: zero blocks become nil mappings (memfile 2 MiB blocks, rootfs pages); a peer reads pending and final byte-exact; a child zero block shadows its parent', async () => {
  const gen = new VmDataGenerator(5, 45)
  // memfile: 2 MiB blocks 1 and 3 all zero; the others VM-like (their zero pages are no whole block).
  const memfile = Buffer.concat([gen.next(2 * MiB), Buffer.alloc(2 * MiB), gen.next(2 * MiB), Buffer.alloc(2 * MiB)])
  const rootfs = gen.next(4 * MiB)
  await writeFile(join(dir, 'memfile'), memfile)
  await writeFile(join(dir, 'rootfs'), rootfs)

  // A serves raw frames while pending and uploads zstd, slowly: the upload frames the source again.
  const a = await node('a', ['--pending-codec', 'none', '--upload-rate', '1500000'])
  const b = await node('b', ['--bootstrap', a.addrs[0]])
  const id = randomUUID()
  const accepted = await pause(a.api, id, { files: { memfile: join(dir, 'memfile'), rootfs: join(dir, 'rootfs') } })
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body))
  await waitFor('B sees the build pending or uploaded', async () => ['pending', 'uploaded'].includes((await stateOn(b, id)) ?? ''))
  assert.ok((await readAll(b, id, 'memfile')).equals(memfile), 'B reads the memfile (pending or final) byte-exact')
  assert.ok((await readAll(b, id, 'rootfs')).equals(rootfs), 'B reads the rootfs byte-exact')
  await waitFor('A uploads the build', async () => (await stateOn(a, id)) === 'uploaded', 60_000)

  const mem = await storedHeader(id, 'memfile')
  assert.deepEqual(
    mem.mappings.map((m) => [m.offset / MiB, m.length / MiB, m.buildId === NIL_BUILD_ID ? 'nil' : 'own']),
    [
      [0, 2, 'own'],
      [2, 2, 'nil'],
      [4, 2, 'own'],
      [6, 2, 'nil'],
    ],
  )
  assert.equal(mem.builds.get(id)?.fileSize, 4 * MiB, 'the memfile object holds its two non-zero blocks')
  const root = await storedHeader(id, 'rootfs')
  assert.ok(nilBytes(root) >= 0.4 * rootfs.byteLength, `rootfs holes: ${nilBytes(root)} of ${rootfs.byteLength}`)
  assert.equal(root.builds.get(id)?.fileSize, rootfs.byteLength - nilBytes(root))
  checkE2bAlignment(mem)
  checkE2bAlignment(root)
  assert.ok((await readAll(b, id, 'memfile')).equals(memfile), 'B reads the final memfile byte-exact')
  assert.ok((await readAll(a, id, 'rootfs')).equals(rootfs), 'A reads the final rootfs byte-exact')

  // The child: [0, 2M) rewritten all zero (its parent has data there), [4M, 6M) new data.
  const childDiff = Buffer.concat([Buffer.alloc(2 * MiB), gen.next(2 * MiB)])
  await writeFile(join(dir, 'child.diff'), childDiff)
  const model = Buffer.from(memfile)
  childDiff.copy(model, 0, 0, 2 * MiB)
  childDiff.copy(model, 4 * MiB, 2 * MiB)
  const child = randomUUID()
  const dirty = { memfile: [[0, 2 * MiB], [4 * MiB, 6 * MiB]] }
  const c = await pause(a.api, child, { parent: id, files: { memfile: join(dir, 'child.diff') }, dirty })
  assert.equal(c.status, 202, JSON.stringify(c.body))
  await waitFor('A uploads the child', async () => (await stateOn(a, child)) === 'uploaded', 60_000)
  const ch = await storedHeader(child, 'memfile')
  assert.equal(resolve(ch, 0).buildId, NIL_BUILD_ID, "the child's zero block is a nil mapping over the parent's data")
  assert.equal(resolve(ch, 4 * MiB).buildId, child)
  assert.equal(ch.builds.get(child)?.fileSize, 2 * MiB)
  checkE2bAlignment(ch)
  await waitFor('B sees the child', async () => (await stateOn(b, child)) !== undefined)
  assert.ok((await readAll(b, child, 'memfile')).equals(model), 'B reads the child: zeros where it zeroed its parent')
})

test('pause: an origin killed while pending reuses its local copy with its holes after the restart; the stored build reads byte-exact', async () => {
  const gen = new VmDataGenerator(8, 45)
  const memfile = Buffer.concat([Buffer.alloc(2 * MiB), gen.next(4 * MiB), Buffer.alloc(4 * MiB), gen.next(2 * MiB)])
  const path = join(dir, 'memfile-restart')
  await writeFile(path, memfile)
  // Slow enough that the upload is still running when the node is killed.
  const args = ['--upload-rate', '200000']
  let a = await node('r', args)
  const id = randomUUID()
  assert.equal((await pause(a.api, id, { files: { memfile: path } })).status, 202)
  await waitFor('the build is pending', async () => (await stateOn(a, id)) === 'pending')
  await a.kill()
  a = await node('r', ['--upload-rate', '0'])
  await waitFor('the restarted origin uploads the build', async () => (await stateOn(a, id)) === 'uploaded', 60_000)
  assert.match(a.stderr(), /resuming an unfinished pause/)
  assert.doesNotMatch(a.stderr(), /does not match its record/, 'the recorded local copy (with its holes) was reused')
  const h = await storedHeader(id, 'memfile')
  assert.deepEqual(
    h.mappings.map((m) => [m.offset / MiB, m.length / MiB, m.buildId === NIL_BUILD_ID ? 'nil' : 'own']),
    [
      [0, 2, 'nil'],
      [2, 4, 'own'],
      [6, 4, 'nil'],
      [10, 2, 'own'],
    ],
  )
  assert.equal(h.builds.get(id)?.fileSize, 6 * MiB)
  assert.ok((await readAll(a, id, 'memfile')).equals(memfile))
})
