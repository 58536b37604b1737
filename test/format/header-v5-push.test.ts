/**
 * Writing V5 headers, as e2b does behind its `header-v5-write` flag: `push --header-version 5` (or
 * `format.headerVersion: 5` in the config) stores V5 headers for every layer that needs build entries,
 * which read back byte for byte and verify; a V4 child on a V5 parent and the reverse read alike.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { decodeHeader } from '../../src/format/header.ts'
import { runCli } from '../../bench/lib/cli.ts'
import { vmLike } from './helpers.ts'

const P = 4096
const SIZE = 600 * P + 123

let dir: string
let storage: string

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-v5-push-'))
  storage = pathToFileURL(join(dir, 'bucket')).href
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

const version = async (id: string) => decodeHeader(await readFile(join(dir, 'bucket', id, 'memfile.header'))).version

test('push --header-version 5 and format.headerVersion 5 write V5 layers that read back and verify, mixed with V4 ones', async () => {
  const model = vmLike(SIZE, 51)
  await writeFile(join(dir, 'base'), model)
  const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()]
  let r = await runCli(['push', '--storage', storage, '--build-id', a, '--memfile', join(dir, 'base'), '--codec', 'zstd', '--block-size', String(P), '--header-version', '5'])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(await version(a), 5)

  // A V4 child of the V5 base (the default), dirtying scattered pages and the partial last page.
  const pages = [3, 4, 77, 300, 599]
  const diff = vmLike(pages.length * P, 52).subarray(0, (pages.length - 1) * P + (SIZE - 599 * P))
  for (const [i, p] of pages.entries()) diff.copy(model, p * P, i * P, Math.min((i + 1) * P, diff.length))
  await writeFile(join(dir, 'diff'), diff)
  const dirty = pages.map((p) => `${p * P}-${Math.min((p + 1) * P, SIZE)}`).join(',')
  r = await runCli(['push', '--storage', storage, '--build-id', b, '--parent', a, '--memfile', join(dir, 'diff'), '--dirty', dirty, '--codec', 'lz4'])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(await version(b), 4)

  // A raw V5 child from the config file.
  const config = join(dir, 'v5.json')
  await writeFile(config, JSON.stringify({ format: { headerVersion: 5 } }))
  const raw = vmLike(2 * P, 53)
  raw.copy(model, 100 * P)
  await writeFile(join(dir, 'raw'), raw)
  r = await runCli(['push', '--storage', storage, '--config', config, '--build-id', c, '--parent', b, '--memfile', join(dir, 'raw'), '--dirty', `${100 * P}-${102 * P}`, '--codec', 'none'])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(await version(c), 5)

  for (const id of [a, b, c]) {
    const verify = await runCli(['inspect', '--storage', storage, id, '--verify'])
    assert.equal(verify.code, 0, verify.stderr)
  }
  const read = await runCli(['read', '--storage', storage, c, 'memfile'])
  assert.equal(read.code, 0, read.stderr)
  assert.ok(read.stdout.equals(model), 'every byte of the V5/V4/V5 chain equals the model')
})

test('push refuses a header version other than 4 or 5 before writing anything', async () => {
  await writeFile(join(dir, 'small'), vmLike(4 * P, 54))
  const id = randomUUID()
  const r = await runCli(['push', '--storage', storage, '--build-id', id, '--memfile', join(dir, 'small'), '--header-version', '3'])
  assert.notEqual(r.code, 0)
  assert.match(r.stderr, /ERR_USAGE: --header-version: expected one of 4\|5, found '3'/)
  const inspect = await runCli(['inspect', '--storage', storage, id])
  assert.notEqual(inspect.code, 0, 'nothing was stored')
})
