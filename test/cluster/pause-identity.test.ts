/**
 * One build id, one content, with real node processes: a build paused on A and partly read on B; its
 * source is rewritten (same size, new content) while A is dead (kill -9); the restarted A must not
 * frame the new content under the old id. It fails the build and says so, and no node ever returns
 * a byte of the new content under that id.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type NodeProc, getJson, pause, waitFor } from '../../bench/lib/procs.ts'
import { CLUSTER_TIMINGS, type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
let env: TestNodes
let dir: string

async function node(name: string, extra: string[] = []): Promise<NodeProc> {
  return env.startTestNode(name, { process: true, args: extra })
}

async function stateOn(n: NodeProc, id: string): Promise<{ state?: string; error?: string }> {
  const r = await getJson(`${n.api}/v1/builds/${id}`)
  return r.status === 200 ? (r.body as { state?: string; error?: string }) : {}
}

/** A full read of the build on `n`: its bytes when it answered 200, else the error it gave. */
async function fullRead(n: NodeProc, id: string): Promise<{ status: number; bytes: Buffer; text: string }> {
  const res = await fetch(`${n.api}/v1/builds/${id}/memfile`)
  try {
    const bytes = Buffer.from(await res.arrayBuffer())
    return { status: res.status, bytes, text: res.status >= 400 ? bytes.toString() : '' }
  } catch (err) {
    // A stream cut after the 200 went out: the client sees an error, never a clean short body.
    return { status: -1, bytes: Buffer.alloc(0), text: String((err as Error).cause ?? err) }
  }
}

/** Neither all of the old content, nor an error: the bytes must be a prefix-free match of `old` wherever they fall. */
function assertNoNewBytes(r: { status: number; bytes: Buffer; text: string }, old: Buffer, fresh: Buffer, who: string): void {
  if (r.status === 200) {
    assert.equal(r.bytes.byteLength, old.byteLength, `${who}: a 200 carries the whole file`)
    assert.ok(r.bytes.equals(old), `${who}: a 200 returns the old content only`)
    assert.ok(!r.bytes.subarray(old.byteLength - MiB).equals(fresh.subarray(old.byteLength - MiB)), `${who}: none of the new content`)
    return
  }
  assert.notEqual(r.status, 206)
  assert.match(r.text, /ERR_[A-Z_]+|terminated|socket|reset/i, `${who}: a clear error, found ${r.status} ${r.text.slice(0, 300)}`)
}

before(async () => {
  env = await testNodes({ prefix: 'identity', clusterKey: true, config: CLUSTER_TIMINGS })
  dir = env.dir
})

after(async () => {
  await env?.close()
})

test('regression: a source rewritten while its origin was down is never framed again under the same build id (item 2)', async () => {
  const size = 16 * MiB
  const old = new VmDataGenerator(41).next(size)
  const fresh = new VmDataGenerator(42).next(size)
  assert.ok(!old.equals(fresh))
  const src = join(dir, 'memfile')
  await writeFile(src, old)

  const b = await node('b')
  // A uploads slowly so that the build is still pending when it is killed.
  const aArgs = ['--upload-rate', '100000', '--bootstrap', b.addrs[0]]
  let a = await node('a', aArgs)
  const id = randomUUID()
  const accepted = await pause(a.api, id, { files: { memfile: src } })
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body))
  await waitFor('B sees the build pending', async () => (await stateOn(b, id)).state === 'pending')
  const part = await fetch(`${b.api}/v1/builds/${id}/memfile`, { headers: { range: `bytes=0-${4 * MiB - 1}` } })
  assert.equal(part.status, 206)
  assert.ok(Buffer.from(await part.arrayBuffer()).equals(old.subarray(0, 4 * MiB)), 'B read the old content')

  await a.kill()
  await writeFile(src, fresh) // same path, same size, same inode: new content
  a = await node('a', aArgs)

  const failed = await waitFor('A fails the build', async () => {
    const s = await stateOn(a, id)
    return s.state === 'failed' ? s : null
  })
  assert.match(failed.error ?? '', /files\.memfile: .* is not the file this build was paused from \(.*mtimeNs expected/)
  assert.match(a.stderr(), /pause failed/)
  await waitFor('B learns the build failed (announced)', async () => (await stateOn(b, id)).state === 'failed', 15_000)

  assertNoNewBytes(await fullRead(b, id), old, fresh, 'B')
  const c = await node('c', ['--bootstrap', b.addrs[0], '--bootstrap', a.addrs[0]])
  await waitFor('C hears of the build', async () => (await stateOn(c, id)).state !== undefined, 15_000)
  assertNoNewBytes(await fullRead(c, id), old, fresh, 'C')
  assertNoNewBytes(await fullRead(a, id), old, fresh, 'A')
  assert.ok(!existsSync(join(dir, 'bucket', id, 'memfile.header')), 'no header for the id was ever stored')
})
