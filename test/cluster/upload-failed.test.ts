/**
 * Failure path: the origin's upload fails. The origin answers UPLOAD_FAILED (never
 * USE_STORAGE for a build that is not there), and a reader that was resuming the pending build gets a
 * clear error at once instead of waiting.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { SnapswarmNode } from '../../src/node/daemon.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
let env: TestNodes
let dir: string
let origin: SnapswarmNode
let reader: SnapswarmNode

before(async () => {
  env = await testNodes({ prefix: 'upfail', config: { peers: { announceIntervalMs: 200, announceTtlMs: 3000 } } })
  dir = env.dir
  reader = await env.startTestNode('r')
  // The origin uploads to its own bucket, which the test sabotages per build (see below).
  origin = await env.startTestNode('o', {
    storage: pathToFileURL(join(dir, 'origin-bucket')).href,
    config: { node: { bootstrap: [reader.addrs()[0]], uploadRateBytesPerSec: 200_000 } },
    logger: process.env.T_LOG ? (await import('../../src/obs/log.ts')).createLogger('debug') : silentLogger,
  })
})

after(async () => {
  await env?.close()
})

test('a failed upload: the origin answers UPLOAD_FAILED and readers of the pending build get a clear error at once', async () => {
  const data = new VmDataGenerator(8).next(4 * MiB)
  const src = join(dir, 'mem')
  await writeFile(src, data)
  const id = randomUUID()
  // Sabotage: a directory where the build's data object goes, so completing that upload fails (after
  // the throttled parts, leaving the pending window readers need; the build's claim is written fine).
  await mkdir(join(dir, 'origin-bucket', id, 'memfile.zstd'), { recursive: true })
  const res = await fetch(`${origin.apiUrl}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ files: { memfile: src } }) })
  assert.equal(res.status, 202, await res.text())
  const first = await waitFor('a read while pending', async () => {
    const r = await fetch(`${reader.apiUrl}/v1/builds/${id}/memfile`, { headers: { range: 'bytes=0-4095' } })
    if (process.env.T_LOG && r.status !== 206) console.log(r.status, await r.clone().text())
    return r.status === 206 ? Buffer.from(await r.arrayBuffer()) : null
  })
  assert.ok(first.equals(data.subarray(0, 4096)))
  await waitFor('the origin to report the failure', async () => {
    const info = (await (await fetch(`${origin.apiUrl}/v1/builds/${id}`)).json()) as { state: string; error?: string }
    return info.state === 'failed' && info.error
  })
  await waitFor('the reader to learn it', async () => ((await (await fetch(`${reader.apiUrl}/v1/builds/${id}`)).json()) as { state: string }).state === 'failed', 10_000)
  // "At once": the reader knows the build failed, so it starts no frame fetch (no source is asked,
  // nothing waits for a timeout).
  const fetchesBefore = await fetchesStarted(reader)
  const r = await fetch(`${reader.apiUrl}/v1/builds/${id}/memfile`, { headers: { range: `bytes=${2 * MiB}-${3 * MiB}` } })
  const body = await r.text()
  assert.equal(r.status, 502, body)
  assert.match(body, /ERR_UPLOAD_FAILED.*upload failed/)
  assert.equal(await fetchesStarted(reader), fetchesBefore, 'the error came without a fetch')
  // A fresh open asks the origin for the header and is told UPLOAD_FAILED, never USE_STORAGE.
  const viaPeer = await reader.peer.client.getHeader(origin.peerId, id, 'memfile')
  assert.equal(viaPeer.status, 'UPLOAD_FAILED')
})

async function fetchesStarted(node: SnapswarmNode): Promise<number> {
  return Number(/^snapswarm_fetches_started_total (\d+)$/m.exec(await node.registry.metrics())?.[1] ?? 0)
}
