/**
 * The chunk cache of a real node (in-process, real TCP and HTTP): node B reads a build that is still
 * pending on its origin A, stops, its chunk cache data file is damaged, B restarts on the same data
 * directory, and every byte B's API returns is the source's, promptly.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { readdir, readFile, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { SnapswarmNode } from '../../src/node/daemon.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
const SIZE = 6 * MiB
let env: TestNodes
let dir: string
let origin: SnapswarmNode

/** A node on the test's bucket with its data in `dataDir`. */
function startNode(dataDir: string, bootstrap: string[] = [], uploadRateBytesPerSec = 0): Promise<SnapswarmNode> {
  return env.startTestNode('node', { dataDir, config: { node: { bootstrap, uploadRateBytesPerSec } } })
}

async function state(node: SnapswarmNode, id: string): Promise<string | undefined> {
  const res = await fetch(`${node.apiUrl}/v1/builds/${id}`)
  return res.status === 200 ? ((await res.json()) as { state: string }).state : undefined
}

async function waitFor(what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await fn()); await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
  }
}

/** The whole file through a node's API, within a bounded deadline far below the 30 s source timeout. */
async function readAll(node: SnapswarmNode, id: string): Promise<Buffer> {
  const res = await fetch(`${node.apiUrl}/v1/builds/${id}/memfile`, { headers: { range: `bytes=0-${SIZE - 1}` }, signal: AbortSignal.timeout(10_000) })
  const body = Buffer.from(await res.arrayBuffer())
  assert.equal(res.status, 206, body.toString().slice(0, 500))
  return body
}

async function cacheDataFile(dataDir: string, id: string): Promise<string> {
  const root = join(dataDir, 'cache')
  const d = (await readdir(root)).find((name) => name.startsWith(id))
  assert.ok(d, `a chunk cache directory for ${id} in ${root}`)
  return join(root, d, 'memfile.data')
}

/** A build paused on the origin and kept pending (its upload throttled), read whole by a reader that then stops. */
async function pendingBuildReadBy(readerDir: string): Promise<{ id: string; data: Buffer }> {
  const data = new VmDataGenerator(Math.floor(Math.random() * 1000)).next(SIZE)
  const src = join(dir, `src-${randomUUID()}`)
  await writeFile(src, data)
  const id = randomUUID()
  const res = await fetch(`${origin.apiUrl}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ files: { memfile: src } }) })
  assert.equal(res.status, 202)
  await waitFor('pending', async () => (await state(origin, id)) === 'pending')
  const reader = await startNode(readerDir, [origin.addrs()[0]])
  try {
    await waitFor('the reader sees the pending build', async () => (await state(reader, id)) === 'pending')
    assert.ok((await readAll(reader, id)).equals(data))
  } finally {
    await reader.stop()
  }
  return { id, data }
}

before(async () => {
  env = await testNodes({ prefix: 'node-cache', config: { peers: { announceIntervalMs: 200, announceTtlMs: 3000 } } })
  dir = env.dir
  // The upload crawls, so builds stay pending for the whole test: readers depend on the origin and on their cache.
  origin = await startNode(join(dir, 'origin'), [], 20_000)
})

after(async () => {
  await env?.close()
})

for (const fault of ['flip', 'truncate'] as const) {
  const name =
    fault === 'flip'
      ? 'regression: through a node, chunk cache rot is served as data after a restart (item 1)'
      : 'regression: through a node, a truncated chunk cache file stalls reads of a pending build and blames the origin (item 8)'
  test(name, async () => {
    const readerDir = join(dir, `reader-${fault}`)
    const { id, data } = await pendingBuildReadBy(readerDir)
    const file = await cacheDataFile(readerDir, id)
    if (fault === 'flip') {
      const bytes = await readFile(file)
      for (let i = SIZE / 2; i < SIZE / 2 + 16; i++) bytes[i] ^= 0x5a
      await writeFile(file, bytes)
    } else {
      await truncate(file, SIZE / 3 + 1234)
    }
    const reader = await startNode(readerDir, [origin.addrs()[0]])
    try {
      await waitFor('the reader sees the pending build', async () => (await state(reader, id)) === 'pending')
      assert.ok((await readAll(reader, id)).equals(data), 'every byte is the source')
    } finally {
      await reader.stop()
    }
  })
}
