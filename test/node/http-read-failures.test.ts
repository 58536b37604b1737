/**
 * Reads that fail through the HTTP API of a real `snapswarm node` process (file:// storage written by
 * `snapswarm push`, real sockets on 127.0.0.1): a failure after the status line went out destroys
 * the connection (the client sees an error, never a clean end of a cut body) and is logged at warn
 * with the build, file, range and cause; a failure before it is a JSON error with a stable code.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type NodeProc, startNode, waitFor } from '../cluster/procs.ts'
import { runCli } from '../helpers/cli.ts'
import { rawGet } from './http-helpers.ts'

const MiB = 1024 * 1024
let dir: string
let node: NodeProc | undefined
let id: string
let data: Buffer

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-http-fail-'))
  data = new VmDataGenerator(91).next(40 * MiB)
  await writeFile(join(dir, 'mem'), data)
  id = randomUUID()
  const storage = pathToFileURL(join(dir, 'bucket')).href
  const pushed = await runCli(['push', '--storage', storage, '--build-id', id, '--memfile', join(dir, 'mem'), '--codec', 'lz4'])
  assert.equal(pushed.code, 0, pushed.stderr)
  // Rot in the stored data object, at its end: the last frames of the file, far past the first 8 MiB read.
  const object = join(dir, 'bucket', id, 'memfile.lz4')
  const size = (await stat(object)).size
  const fh = await open(object, 'r+')
  const rot = Buffer.alloc(64 * 1024)
  await fh.read(rot, 0, rot.byteLength, size - rot.byteLength)
  for (let i = 0; i < rot.byteLength; i += 7) rot[i] ^= 0x5a
  await fh.write(rot, 0, rot.byteLength, size - rot.byteLength)
  await fh.close()
  node = await startNode(['--storage', storage, '--data-dir', join(dir, 'node')])
})

after(async () => {
  await node?.stop()
  await rm(dir, { recursive: true, force: true })
})

test('regression: a read that fails mid-stream leaves the client a cut 200 and logs nothing (item 9)', async () => {
  const api = node!.api
  const got = await rawGet(`${api}/v1/builds/${id}/memfile`)
  assert.equal(got.status, 200, 'the first chunk was good: the status line went out')
  assert.equal(got.outcome, 'error', `the client must see the cut as an error, not a clean end (got ${got.outcome} after ${got.body.byteLength} bytes)`)
  assert.ok(got.body.byteLength < data.byteLength, 'the body is incomplete')
  assert.ok(got.body.byteLength >= 8 * MiB, `the first chunk arrived (got ${got.body.byteLength} bytes)`)
  assert.ok(got.body.equals(data.subarray(0, got.body.byteLength)), 'what did arrive equals the source')
  const line = await waitFor('the warn line of the failed read', async () =>
    node!
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.level === 40 && l.buildId === id && String(l.msg).includes('mid-stream')),
  )
  assert.equal(line.kind, 'memfile')
  assert.equal(line.range, `0-${data.byteLength - 1}`)
  const err = line.err as { code?: string; message?: string }
  assert.ok(err?.code && err.message, `the cause is logged with its code and message: ${JSON.stringify(line.err)}`)

  // The same failure before any byte went out: a JSON error with a stable code, not a cut body.
  const tail = await rawGet(`${api}/v1/builds/${id}/memfile`, `bytes=${data.byteLength - 4096}-${data.byteLength - 1}`)
  assert.equal(tail.outcome, 'end')
  assert.equal(tail.status, 502, tail.body.toString())
  const body = JSON.parse(tail.body.toString()) as { error: string; message: string }
  assert.equal(body.error, err.code, 'the stable code of the same cause')

  // The node keeps serving what is intact, exactly.
  const good = await rawGet(`${api}/v1/builds/${id}/memfile`, `bytes=${3 * MiB + 5}-${20 * MiB}`)
  assert.equal(good.status, 206)
  assert.equal(good.outcome, 'end')
  assert.ok(good.body.equals(data.subarray(3 * MiB + 5, 20 * MiB + 1)))
})
