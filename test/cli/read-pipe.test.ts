/**
 * `snapswarm read` on a real pipe: a reader that closes stdout early (`| head -c 16`) and SIGINT/SIGTERM
 * end the command without a stack trace, with the documented status, and its temporary chunk cache
 * (`snapswarm-cache-*` in TMPDIR) removed. Every byte that did arrive is checked against the source.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { writeVmData } from '../../src/util/vmdata.ts'
import { CLI, runCli } from '../../bench/lib/cli.ts'

const MiB = 1024 * 1024
let dir: string
let source: Buffer
const id = randomUUID()

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-read-pipe-'))
  const input = join(dir, 'memfile')
  // Several 8 MiB output steps: the command is still writing when its reader goes away.
  await writeVmData(input, 40 * MiB, 11)
  source = await readFile(input)
  const r = await runCli(['push', '--storage', `file://${join(dir, 'store')}`, '--build-id', id, '--memfile', input])
  assert.equal(r.code, 0, r.stderr)
})

after(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** A read whose TMPDIR is a fresh directory, so its temp cache is the only thing that can appear there. */
async function spawnRead(): Promise<{ child: ChildProcess; tmp: string; stderr: () => string; exited: Promise<[number | null, NodeJS.Signals | null]> }> {
  const tmp = await mkdtemp(join(dir, 'tmp-'))
  const child = spawn(process.execPath, [CLI, 'read', '--storage', `file://${join(dir, 'store')}`, id, 'memfile'], {
    env: { ...process.env, TMPDIR: tmp },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  return { child, tmp, stderr: () => err, exited }
}

/** The first `n` bytes of the child's stdout, then stop reading (the pipe fills; the child blocks). */
async function firstBytes(child: ChildProcess, n: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let got = 0
  for await (const chunk of child.stdout!) {
    chunks.push(chunk as Buffer)
    got += (chunk as Buffer).length
    if (got >= n) break
  }
  return Buffer.concat(chunks).subarray(0, n)
}

test('regression: read | head -c 16 crashed with an EPIPE stack trace and left its snapswarm-cache-* dir: now exit 0, quiet, cleaned', async () => {
  for (let i = 0; i < 3; i++) {
    const { child, tmp, stderr, exited } = await spawnRead()
    // `for await … break` destroys the stream: our end of the pipe closes, as when `head` exits.
    const head = await firstBytes(child, 16)
    assert.ok(head.equals(source.subarray(0, 16)), 'the bytes that arrived are the source bytes')
    const [code, signal] = await exited
    assert.equal(signal, null, stderr())
    assert.equal(code, 0, stderr())
    assert.equal(stderr(), '', 'nothing on stderr')
    assert.deepEqual(await readdir(tmp), [], 'the temporary chunk cache is removed')
  }
})

for (const [sig, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test(`${sig} during a read: one ERR_INTERRUPTED line, exit ${status}, the temporary chunk cache removed`, async () => {
    const { child, tmp, stderr, exited } = await spawnRead()
    const chunks: Buffer[] = []
    let got = 0
    // Read the first MiB, then stop consuming: the child stays blocked on a full pipe, mid-read.
    await new Promise<void>((resolve) => {
      const onData = (d: Buffer) => {
        chunks.push(d)
        got += d.length
        if (got < MiB) return
        child.stdout!.pause()
        child.stdout!.off('data', onData)
        resolve()
      }
      child.stdout!.on('data', onData)
    })
    assert.ok((await readdir(tmp)).some((n) => n.startsWith('snapswarm-cache-')), 'the read made its temporary cache')
    child.kill(sig)
    // Nobody reads the pipe any more: the command must exit anyway (its pending output is dropped).
    const [code] = await exited
    child.stdout!.on('data', (d: Buffer) => chunks.push(d))
    assert.equal(code, status, stderr())
    assert.match(stderr(), new RegExp(`^snapswarm: ERR_INTERRUPTED: stopped by ${sig}\\n$`))
    const out = Buffer.concat(chunks)
    assert.ok(out.equals(source.subarray(0, out.length)), 'every byte written before the signal is the source byte')
    assert.ok(out.length < source.length, 'the read stopped before the end')
    assert.deepEqual(await readdir(tmp), [], 'the temporary chunk cache is removed')
  })
}
