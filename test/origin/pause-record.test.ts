/**
 * What a restarted origin does with what the previous run left on disk, in-process over real HTTP
 * and real files: a damaged or cut pause record fails its build (never resumed on a guess, never a
 * crash at start); a damaged local framed copy is framed again from the unchanged source; a source
 * whose content changed behind a forged modification time is caught by its SHA-256 when the local
 * copy has to be made again, and otherwise the intact local copy (the announced content) is uploaded.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { open, readFile, readdir, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { SnapswarmNode } from '../../src/node/daemon.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { waitFor } from '../../bench/lib/procs.ts'
import { type ConfigTree, type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
let env: TestNodes
let dir: string
const gen = new VmDataGenerator(33)

function config(uploadRateBytesPerSec: number): ConfigTree {
  return { node: { uploadRateBytesPerSec, pendingGraceMs: 600_000 }, peers: { announceIntervalMs: 200, announceTtlMs: 3000 } }
}

async function info(n: SnapswarmNode, id: string): Promise<{ state?: string; error?: string }> {
  const res = await fetch(`${n.apiUrl}/v1/builds/${id}`)
  return res.status === 200 ? ((await res.json()) as { state: string; error?: string }) : {}
}

async function readAll(n: SnapswarmNode, id: string): Promise<{ status: number; bytes: Buffer }> {
  const res = await fetch(`${n.apiUrl}/v1/builds/${id}/memfile`)
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) }
}

/** Pause `data` on a node that uploads slowly, wait until pending, stop it: the record says pending. */
async function leavePending(name: string, data: Buffer): Promise<{ id: string; src: string; dataDir: string }> {
  const src = join(dir, `${name}.src`)
  await writeFile(src, data)
  const dataDir = join(dir, name)
  const n = await env.startTestNode(name, { config: config(20_000) })
  const id = randomUUID()
  try {
    const res = await fetch(`${n.apiUrl}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ files: { memfile: src } }) })
    assert.equal(res.status, 202, await res.text())
    await waitFor('pending', async () => (await info(n, id)).state === 'pending')
  } finally {
    await n.stop()
  }
  return { id, src, dataDir }
}

async function flipByte(path: string, at: number): Promise<void> {
  const fh = await open(path, 'r+')
  try {
    const b = Buffer.alloc(1)
    await fh.read(b, 0, 1, at)
    b[0] ^= 0x20
    await fh.write(b, 0, 1, at)
  } finally {
    await fh.close()
  }
}

/**
 * Rewrite 4 KiB of `path` in place (same inode, same size) and put its modification time back to the
 * nanosecond (touch -r copies it exactly): a change its stat identity cannot see.
 */
async function rewriteKeepingStat(path: string, at: number): Promise<void> {
  const before = await stat(path, { bigint: true })
  execFileSync('touch', ['-r', path, `${path}.times`])
  const fh = await open(path, 'r+')
  try {
    await fh.write(gen.next(4096), 0, 4096, at)
  } finally {
    await fh.close()
  }
  execFileSync('touch', ['-r', `${path}.times`, path])
  const after = await stat(path, { bigint: true })
  assert.equal(after.mtimeNs, before.mtimeNs)
  assert.equal(after.ino, before.ino)
}

/** Restart on the same data dir (fast uploads now), run `check`, stop. */
async function restarted(dataDir: string, check: (n: SnapswarmNode) => Promise<void>): Promise<void> {
  const n = await env.startTestNode('restarted', { config: config(0), dataDir })
  try {
    await check(n)
  } finally {
    await n.stop()
  }
}

before(async () => {
  env = await testNodes({ prefix: 'pause-record' })
  dir = env.dir
})

after(async () => {
  await env?.close()
})

test('regression: a pause record with a flipped byte, or cut short, fails its build at restart instead of resuming it (item 2)', async () => {
  const damage: [string, (path: string) => Promise<void>][] = [
    ['a flipped byte in the request', async (p) => flipByte(p, (await readFile(p, 'utf8')).indexOf('"files"') + 3)],
    ['a flipped digit of the source size', async (p) => flipByte(p, (await readFile(p, 'utf8')).indexOf('"size":') + 7)],
    ['a flipped byte of the checksum line', async (p) => flipByte(p, (await stat(p)).size - 5)],
    ['cut in half', async (p) => truncate(p, Math.floor((await stat(p)).size / 2))],
    ['emptied', async (p) => truncate(p, 0)],
  ]
  for (const [what, harm] of damage) {
    const data = gen.next(2 * MiB)
    const { id, dataDir } = await leavePending(`rec-${damage.findIndex((d) => d[0] === what)}`, data)
    await harm(join(dataDir, 'builds', id, 'state.json'))
    await restarted(dataDir, async (n) => {
      const s = await waitFor(`${what}: failed`, async () => {
        const i = await info(n, id)
        return i.state === 'failed' ? i : null
      })
      assert.match(s.error ?? '', /pause record unreadable after a restart/, what)
      const r = await readAll(n, id)
      assert.equal(r.status, 502, `${what}: ${r.bytes.toString().slice(0, 200)}`)
      assert.match(r.bytes.toString(), /ERR_UPLOAD_FAILED/)
    })
    assert.deepEqual(await readdir(join(dir, 'bucket', id)).catch(() => []), [], `${what}: nothing of the build reached storage`)
  }
})

test('a local framed copy with a flipped byte is framed again from the unchanged source; storage gets the source bytes', async () => {
  const data = gen.next(6 * MiB)
  const { id, dataDir } = await leavePending('copy-flip', data)
  const build = join(dataDir, 'builds', id)
  const copy = (await readdir(build)).find((f) => f.startsWith('memfile'))!
  await flipByte(join(build, copy), 1000)
  await restarted(dataDir, async (n) => {
    await waitFor('uploaded', async () => (await info(n, id)).state === 'uploaded', 30_000)
    const r = await readAll(n, id)
    assert.equal(r.status, 200)
    assert.ok(r.bytes.equals(data))
  })
})

test('regression: a source whose content changed behind a restored mtime fails the build when its local copy must be framed again (item 2)', async () => {
  const data = gen.next(4 * MiB)
  const { id, src, dataDir } = await leavePending('forged-mtime', data)
  await rewriteKeepingStat(src, 2 * MiB)
  const build = join(dataDir, 'builds', id)
  const copy = (await readdir(build)).find((f) => f.startsWith('memfile'))!
  await truncate(join(build, copy), 100) // the local copy must be made again
  await restarted(dataDir, async (n) => {
    const s = await waitFor('failed', async () => {
      const i = await info(n, id)
      return i.state === 'failed' ? i : null
    })
    assert.match(s.error ?? '', /now holds other content than this build announced \(SHA-256 [0-9a-f]{64} expected, found [0-9a-f]{64}\)/)
    assert.equal((await readAll(n, id)).status, 502)
  })
})

test('a source changed behind a restored mtime while the intact local copy is reused: the build uploads the content it announced', async () => {
  const data = gen.next(4 * MiB)
  const { id, src, dataDir } = await leavePending('forged-mtime-intact', data)
  await rewriteKeepingStat(src, MiB)
  await restarted(dataDir, async (n) => {
    await waitFor('uploaded', async () => (await info(n, id)).state === 'uploaded', 30_000)
    const r = await readAll(n, id)
    assert.equal(r.status, 200)
    assert.ok(r.bytes.equals(data), 'the announced (old) content, never the changed source')
  })
})
