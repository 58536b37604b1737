/**
 * Pausing a memfile from an overlay (2 MiB blocks): the child's diff is the overlay's written blocks
 * widened to the parent's block size (the last one ending at the file's size), its bytes read
 * through the overlay; the per-file body form works, and a body that contradicts the overlay is
 * refused before anything is recorded.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BuildId } from '../../src/format/types.ts'
import { NIL_BUILD_ID } from '../../src/format/types.ts'
import type { SnapswarmNode } from '../../src/node/daemon.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'
import { nbdUri, run, sha, socketOf, startExport } from './helpers.ts'

const MiB = 1024 * 1024
const SIZE = 7 * MiB // the last 2 MiB block is short
let env: TestNodes
let dir: string
let node: SnapswarmNode
let parent: BuildId
let source: Buffer

const post = async (path: string, body: unknown) => {
  const res = await fetch(`${node.apiUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

before(async () => {
  env = await testNodes({ prefix: 'nbd-pause' })
  dir = env.dir
  node = await env.startTestNode('node')
  source = new VmDataGenerator(101).next(SIZE)
  await writeFile(join(dir, 'memfile'), source)
  parent = randomUUID() as BuildId
  assert.equal((await post(`/v1/builds/${parent}`, { files: { memfile: join(dir, 'memfile') } })).status, 202)
  await waitFor('the parent to upload', async () => node.localBuild(parent)?.state === 'uploaded', 60_000)
  await startExport(node.apiUrl, { build: parent, file: 'memfile', overlay: 'mem' })
})

after(async () => {
  await env?.close()
})

test('a memfile child from an overlay holds its written blocks widened to 2 MiB and reads as parent-with-writes', async () => {
  const expected = Buffer.from(source)
  const io = await run('qemu-io', ['-f', 'raw', '-c', `write -P 0x42 ${3 * MiB + 4096} 8192`, '-c', `write -P 0x24 ${SIZE - 4096} 4096`, nbdUri(socketOf(join(dir, 'node')), `${parent}/memfile@mem`)])
  assert.equal(io.code, 0, io.stderr)
  expected.fill(0x42, 3 * MiB + 4096, 3 * MiB + 4096 + 8192)
  expected.fill(0x24, SIZE - 4096, SIZE)

  // Refused before anything is recorded: another parent, dirty ranges of its own, an unknown overlay.
  const other = randomUUID()
  assert.equal((await post(`/v1/builds/${randomUUID()}`, { parent: other, overlay: 'mem' })).status, 400)
  assert.equal((await post(`/v1/builds/${randomUUID()}`, { files: { memfile: { overlay: 'mem' } }, dirty: { memfile: [[0, 4096]] } })).status, 400)
  assert.equal((await post(`/v1/builds/${randomUUID()}`, { files: { memfile: { overlay: 'nope' } } })).status, 404)

  const child = randomUUID() as BuildId
  const p = await post(`/v1/builds/${child}`, { files: { memfile: { overlay: 'mem' } } })
  assert.equal(p.status, 202, JSON.stringify(p.body))
  await waitFor('the child to upload', async () => node.localBuild(child)?.state === 'uploaded', 60_000)
  const f = await node.openRead(child, 'memfile')
  try {
    assert.equal(sha(await f.read(0, SIZE)), sha(expected))
    // The child's own bytes (or zeros it stores as holes) cover exactly the widened blocks.
    const dirty = [
      [2 * MiB, 4 * MiB],
      [6 * MiB, SIZE],
    ]
    const inDirty = (o: number, end: number) => dirty.some(([s, e]) => o >= s && end <= e)
    const childMaps = f.file.header.mappings.filter((m) => m.buildId === child)
    assert.ok(childMaps.length > 0)
    for (const m of childMaps) assert.ok(inDirty(m.offset, m.offset + m.length), `child mapping ${m.offset}+${m.length} outside the written blocks`)
    const covered = f.file.header.mappings.filter((m) => (m.buildId === child || m.buildId === NIL_BUILD_ID) && inDirty(m.offset, m.offset + m.length)).reduce((n, m) => n + m.length, 0)
    assert.equal(covered, 2 * MiB + 1 * MiB)
  } finally {
    await f.close()
  }
})
