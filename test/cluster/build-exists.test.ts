/**
 * One build id, one content, with real node processes over one file:// bucket: the same id paused on
 * two nodes with different content (at the same time, and one while the other is still uploading)
 * ends with exactly one build in storage, the winner's, intact; the other node reports its copy failed
 * with ERR_BUILD_EXISTS; a third node reads the winner's bytes.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { openStoredBuildFile } from '../../src/read/open.ts'
import { openStore } from '../../src/storage/url.ts'
import { uploadBuild } from '../../src/upload/build-upload.ts'
import { claimObjectName } from '../../src/format/layout.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type NodeProc, getJson, pause, readRange, waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

let env: TestNodes
let dir: string
let storage: string
let reader: NodeProc
let slow: NodeProc
let fast: NodeProc
let seed = 60

async function memfile(size: number): Promise<{ path: string; data: Buffer }> {
  const data = new VmDataGenerator(++seed).next(size)
  const path = join(dir, `memfile-${seed}`)
  await writeFile(path, data)
  return { path, data }
}

/** The node's own view of a build it paused, once the upload ended one way or the other. */
async function outcome(node: NodeProc, id: string): Promise<{ state: string; error?: string }> {
  return waitFor(`the pause of ${id} on ${node.peerId.slice(-6)} to end`, async () => {
    const { body } = await getJson(`${node.api}/v1/builds/${id}`)
    return body.state === 'uploaded' || body.state === 'failed' ? (body as { state: string; error?: string }) : null
  }, 60_000)
}

/** Storage holds exactly the winner's build: its objects (no claim, nothing else) and its bytes. */
async function checkStored(id: string, data: Buffer): Promise<void> {
  const store = await openStore(storage)
  try {
    assert.deepEqual(await store.list(`${id}/`), [`${id}/memfile.header`, `${id}/memfile.zstd`])
    const f = await openStoredBuildFile({ store, buildId: id, kind: 'memfile' })
    try {
      assert.equal(sha(await f.read(0, f.size)), sha(data), 'storage holds the winner intact')
    } finally {
      await f.close()
    }
  } finally {
    await store.close()
  }
}

async function checkThirdNode(id: string, data: Buffer): Promise<void> {
  const r = await readRange(reader.api, id, 'memfile', 0, data.byteLength - 1)
  assert.equal(r.status, 206, r.text)
  assert.equal(sha(r.bytes), sha(data), 'the third node reads the winner')
  const s = 3 * MiB + 123
  const part = await readRange(reader.api, id, 'memfile', s, s + MiB)
  assert.ok(part.status === 206 && part.bytes.equals(data.subarray(s, s + MiB + 1)))
}

before(async () => {
  env = await testNodes({
    prefix: 'build-exists',
    clusterKey: true,
    config: { peers: { announceIntervalMs: 300, announceTtlMs: 3000 }, switchover: { finalHeaderPollMs: 2000 } },
  })
  dir = env.dir
  storage = env.storage
  reader = await env.startTestNode('reader', { process: true })
  const boot = ['--bootstrap', reader.addrs[0]]
  ;[slow, fast] = await Promise.all([
    env.startTestNode('slow', { process: true, args: ['--upload-rate', '400000', ...boot] }),
    env.startTestNode('fast', { process: true, args: boot }),
  ])
})

after(async () => {
  await env?.close()
})

test('regression: the same build id paused on two nodes, the later upload overwrites the finished one (item 3)', async () => {
  // At the same time: both are accepted (nothing is stored yet), exactly one wins the whole build.
  {
    const id = randomUUID()
    const [a, b] = [await memfile(8 * MiB), await memfile(8 * MiB)]
    const posts = await Promise.all([pause(slow.api, id, { files: { memfile: a.path } }), pause(fast.api, id, { files: { memfile: b.path } })])
    assert.deepEqual(posts.map((p) => p.status), [202, 202], JSON.stringify(posts.map((p) => p.body)))
    const [oa, ob] = [await outcome(slow, id), await outcome(fast, id)]
    assert.deepEqual([oa.state, ob.state].sort(), ['failed', 'uploaded'], `one uploaded, one failed: ${JSON.stringify([oa, ob])}`)
    const loser = oa.state === 'failed' ? oa : ob
    assert.match(loser.error ?? '', /ERR_BUILD_EXISTS/)
    const winner = oa.state === 'uploaded' ? a : b
    await checkStored(id, winner.data)
    await checkThirdNode(id, winner.data)
  }
  // One after the other: the second node pauses while the first is still uploading; the first wins.
  {
    const id = randomUUID()
    const [a, b] = [await memfile(8 * MiB), await memfile(8 * MiB)]
    assert.equal((await pause(slow.api, id, { files: { memfile: a.path } })).status, 202)
    await waitFor('the first pause to be pending', async () => (await getJson(`${slow.api}/v1/builds/${id}`)).body.state === 'pending')
    assert.equal((await pause(fast.api, id, { files: { memfile: b.path } })).status, 202)
    const second = await outcome(fast, id)
    assert.equal(second.state, 'failed')
    assert.match(second.error ?? '', /ERR_BUILD_EXISTS/)
    assert.equal((await getJson(`${slow.api}/v1/builds/${id}`)).body.state, 'pending', 'refused while the first was still uploading')
    assert.equal((await outcome(slow, id)).state, 'uploaded')
    await checkStored(id, a.data)
    await checkThirdNode(id, a.data)
    // Once it is stored, a pause of that id elsewhere is refused at once (409) and registers nothing.
    const late = await pause(reader.api, id, { files: { memfile: b.path } })
    assert.equal(late.status, 409, JSON.stringify(late.body))
    assert.equal(late.body.error, 'ERR_BUILD_EXISTS')
    await checkStored(id, a.data)
  }
})

test('an origin killed -9 mid-upload keeps its claim: another node cannot take the id, the restarted origin finishes its own build', async () => {
  const id = randomUUID()
  const a = await memfile(8 * MiB)
  const b = await memfile(8 * MiB)
  const boot = ['--bootstrap', reader.addrs[0]]
  const origin = await env.startTestNode('killed', { process: true, args: ['--upload-rate', '200000', ...boot] })
  assert.equal((await pause(origin.api, id, { files: { memfile: a.path } })).status, 202)
  await waitFor('the upload to start (its claim stored)', async () => existsSync(join(dir, 'bucket', id, 'snapswarm.claim')))
  await origin.kill()
  assert.ok(!existsSync(join(dir, 'bucket', id, 'memfile.header')), 'killed before its header')

  assert.equal((await pause(fast.api, id, { files: { memfile: b.path } })).status, 202)
  const other = await outcome(fast, id)
  assert.equal(other.state, 'failed')
  assert.match(other.error ?? '', /ERR_BUILD_EXISTS/)

  const again = await env.startTestNode('killed', { process: true, args: boot })
  assert.equal(again.peerId, origin.peerId, 'the same writer')
  assert.equal((await outcome(again, id)).state, 'uploaded')
  await checkStored(id, a.data)
  await checkThirdNode(id, a.data)
})

test('an origin killed after its headers were stored marks the build uploaded after a restart, uploads nothing twice and drops its claim', async () => {
  const id = randomUUID()
  const a = await memfile(8 * MiB)
  const boot = ['--bootstrap', reader.addrs[0]]
  const origin = await env.startTestNode('finished', { process: true, args: ['--upload-rate', '200000', ...boot] })
  assert.equal((await pause(origin.api, id, { files: { memfile: a.path } })).status, 202)
  const claim = join(dir, 'bucket', claimObjectName(id))
  await waitFor('the upload to start (its claim stored)', async () => existsSync(claim))
  await origin.kill()
  // Finish the upload as the origin would have (same writer, same content and settings: its claim
  // lets it on), and leave the claim as if it died right after its last header.
  const store = await openStore(storage)
  try {
    await uploadBuild({ store, buildId: id, files: { memfile: a.path }, useCase: 'pause', writer: `node:${origin.peerId}` })
    await store.put(claimObjectName(id), Buffer.from(JSON.stringify({ writer: `node:${origin.peerId}`, digest: 'left' })))
  } finally {
    await store.close()
  }
  const data = join(dir, 'bucket', id, 'memfile.zstd')
  const before = await stat(data)

  const again = await env.startTestNode('finished', { process: true, args: boot })
  assert.equal((await outcome(again, id)).state, 'uploaded')
  const after = await stat(data)
  assert.deepEqual([after.ino, after.mtimeMs], [before.ino, before.mtimeMs], 'the data object was not written again')
  await checkStored(id, a.data)
  await checkThirdNode(id, a.data)
})
