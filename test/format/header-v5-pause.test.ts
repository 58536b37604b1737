/**
 * A node configured with `format.headerVersion: 5` pauses a build of an odd size: its pending header
 * reaches a peer as V5 over the wire, the peer reads through it, switches to the stored V5 header
 * when the upload completes, and a cold node reads the stored build; every byte checked.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { decodeHeader } from '../../src/format/header.ts'
import { getJson, pause, readRange, waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'
import { vmLike } from './helpers.ts'

const MiB = 1024 * 1024
const SIZE = 6 * MiB + 4096 * 3 + 77

let env: TestNodes
let dir: string

before(async () => {
  env = await testNodes({ prefix: 'v5-pause', clusterKey: true, config: { format: { headerVersion: 5 }, peers: { announceIntervalMs: 300, announceTtlMs: 3000 } } })
  dir = env.dir
})
after(async () => {
  await env?.close()
})

test('a node writing V5 serves its pending V5 header to peers and stores V5; peers and a cold node read every byte', async () => {
  const data = vmLike(SIZE, 61)
  await writeFile(join(dir, 'memfile'), data)
  const start = (name: string, extra: string[] = []) => env.startTestNode(name, { process: true, args: extra })
  const origin = await start('origin', ['--upload-rate', '300000'])
  const peer = await start('peer', ['--bootstrap', origin.addrs[0]])
  const id = randomUUID()
  const accepted = await pause(origin.api, id, { files: { memfile: join(dir, 'memfile') } })
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body))

  await waitFor('the build pending on the peer', async () => (await getJson(`${peer.api}/v1/builds/${id}`)).body.state === 'pending')
  const pending = await readRange(peer.api, id, 'memfile', SIZE - 3 * MiB, SIZE - 1)
  assert.equal(pending.status, 206, pending.text)
  assert.ok(pending.bytes.equals(data.subarray(SIZE - 3 * MiB)), 'the tail, read through the pending V5 header')
  const states = (await getJson(`${peer.api}/v1/builds/${id}`)).body
  assert.equal(states.state, 'pending', 'that read happened while the upload was still running')

  await waitFor('the upload', async () => (await getJson(`${origin.api}/v1/builds/${id}`)).body.state === 'uploaded', 60_000)
  const stored = decodeHeader(await readFile(join(dir, 'bucket', id, 'memfile.header')))
  assert.equal(stored.version, 5)
  assert.equal(stored.incomplete, false)
  const whole = await readRange(peer.api, id, 'memfile', 0, SIZE - 1)
  assert.equal(whole.status, 206, whole.text)
  assert.ok(whole.bytes.equals(data), 'the peer, after its switch to the stored header')
  const cold = await start('cold')
  const coldRead = await readRange(cold.api, id, 'memfile', 0, SIZE - 1)
  assert.equal(coldRead.status, 206, coldRead.text)
  assert.ok(coldRead.bytes.equals(data), 'a cold node, from storage')
  await Promise.all([origin, peer, cold].map((n) => n.stop()))
})
