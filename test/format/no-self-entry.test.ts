/**
 * A build e2b wrote by pausing with compression off on top of a compressed template: its stored
 * header keeps the parent's version 4 but lists only the ancestors, while its mappings point at the
 * build itself, uncompressed at `{id}/memfile`. `read` and `inspect --verify` (the real CLI, on a
 * directory bucket) must agree on it, and a snapswarm child pushed on top of it must read back.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { FrameTable } from '../../src/format/frame-table.ts'
import { decodeHeader, encodeHeader } from '../../src/format/header.ts'
import { layerHeader } from '../../src/format/mapping.ts'
import { runCli } from '../../bench/lib/cli.ts'
import { vmLike } from './helpers.ts'

const P = 4096
const SIZE = 256 * P + 100
/** The pages e2b's uncompressed pause dirtied, packed in order in its data file. */
const DIRTY = [
  { start: P, end: 3 * P },
  { start: 40 * P, end: 41 * P },
]

let dir: string
let storage: string
let model: Buffer
const [A, C] = [randomUUID(), randomUUID()]

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-no-self-'))
  storage = pathToFileURL(join(dir, 'bucket')).href
  model = vmLike(SIZE, 31)
  await writeFile(join(dir, 'base'), model)
  const r = await runCli(['push', '--storage', storage, '--build-id', A, '--memfile', join(dir, 'base'), '--codec', 'zstd', '--block-size', String(P)])
  assert.equal(r.code, 0, r.stderr)
  // What e2b's V3 upload path stores on a V4 parent: its builds carried over, no entry for itself.
  const parent = decodeHeader(await readFile(join(dir, 'bucket', A, 'memfile.header')))
  const diff = vmLike(3 * P, 32)
  let at = 0
  for (const d of DIRTY) {
    diff.copy(model, d.start, at, at + d.end - d.start)
    at += d.end - d.start
  }
  const withSelf = layerHeader(parent, { buildId: C, dirty: DIRTY, info: { buildId: C, fileSize: diff.length, sha256: new Uint8Array(32), frames: new FrameTable('none', []) } })
  const e2b = { ...withSelf, version: 4 as const, builds: new Map([...withSelf.builds].filter(([id]) => id !== C)) }
  assert.deepEqual([...e2b.builds.keys()], [A])
  await mkdir(join(dir, 'bucket', C))
  await writeFile(join(dir, 'bucket', C, 'memfile'), diff)
  await writeFile(join(dir, 'bucket', C, 'memfile.header'), encodeHeader(e2b))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('a V4 header without a self entry', () => {
  test('regression: read failed with ERR_FORMAT (no build info for layer) while inspect --verify said OK: now both read it, every byte', async () => {
    const read = await runCli(['read', '--storage', storage, C, 'memfile'])
    assert.equal(read.code, 0, read.stderr)
    assert.ok(read.stdout.equals(model), 'every byte equals the model')
    const part = await runCli(['read', '--storage', storage, C, 'memfile', '--offset', String(40 * P - 10), '--length', String(P + 20)])
    assert.equal(part.code, 0, part.stderr)
    assert.ok(part.stdout.equals(model.subarray(40 * P - 10, 41 * P + 10)))

    const strict = await runCli(['inspect', '--storage', storage, C, '--verify'])
    assert.notEqual(strict.code, 0, 'the own raw layer carries no checksum: not reported verified')
    assert.match(strict.stderr, new RegExp(`ERR_UNVERIFIABLE: ${C}/memfile: cannot be verified: a legacy raw layer carries no checksum`))
    const allowed = await runCli(['inspect', '--storage', storage, C, '--verify', '--allow-unverifiable', '--json'])
    assert.equal(allowed.code, 0, allowed.stderr)
    const layers = JSON.parse(allowed.stdout.toString()).memfile.verify.layers
    assert.deepEqual(layers.map((l: { object: string; status: string }) => [l.object, l.status]).sort(), [[`${A}/memfile.zstd`, 'verified'], [`${C}/memfile`, 'unverifiable']].sort())
  })

  test('a snapswarm child of it reads back, and carries e2b\'s empty entry for the uncompressed layer', async () => {
    const D = randomUUID()
    const diff = vmLike(2 * P, 33)
    diff.copy(model, 2 * P)
    await writeFile(join(dir, 'child'), diff)
    const r = await runCli(['push', '--storage', storage, '--build-id', D, '--parent', C, '--memfile', join(dir, 'child'), '--dirty', `${2 * P}-${4 * P}`, '--codec', 'lz4'])
    assert.equal(r.code, 0, r.stderr)
    const h = decodeHeader(await readFile(join(dir, 'bucket', D, 'memfile.header')))
    assert.equal(h.version, 4)
    const placeholder = h.builds.get(C)
    assert.deepEqual([placeholder?.fileSize, placeholder?.frames.codec, placeholder?.sha256.some((b) => b !== 0)], [0, 'none', false])
    const read = await runCli(['read', '--storage', storage, D, 'memfile'])
    assert.equal(read.code, 0, read.stderr)
    assert.ok(read.stdout.equals(model), 'every byte of the child equals the model')
    const verify = await runCli(['inspect', '--storage', storage, D, '--verify', '--allow-unverifiable'])
    assert.equal(verify.code, 0, verify.stderr)
  })

  test('read and verify fail together when the uncompressed object is missing', async () => {
    await unlink(join(dir, 'bucket', C, 'memfile'))
    const read = await runCli(['read', '--storage', storage, C, 'memfile', '--offset', String(P), '--length', '10'])
    assert.notEqual(read.code, 0)
    const verify = await runCli(['inspect', '--storage', storage, C, '--verify', '--allow-unverifiable'])
    assert.notEqual(verify.code, 0)
    assert.match(verify.stderr, new RegExp(`${C}/memfile.*data object missing`))
  })
})
