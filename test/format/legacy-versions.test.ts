/**
 * Builds e2b stored with header versions 1 and 2 (the V3 layout, written until Nov 2025): `read`
 * returns their bytes and `push --parent` layers on them, through the real CLI on a directory bucket.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { decodeHeader } from '../../src/format/header.ts'
import { uuidToBytes } from '../../src/format/uuid.ts'
import { runCli } from '../../bench/lib/cli.ts'
import { Golden, vmLike } from './helpers.ts'

const P = 4096
const SIZE = 64 * P

let dir: string
let storage: string

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-legacy-versions-'))
  storage = pathToFileURL(join(dir, 'bucket')).href
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

for (const version of [1, 2]) {
  test(`regression: version ${version} headers were refused (expected 3 or 4): a version ${version} build reads, and push --parent layers a child on it`, async () => {
    const id = randomUUID()
    const model = vmLike(SIZE, 70 + version)
    // e2b's layout: metadata, then one 40-byte mapping of the whole file to the build itself.
    const g = new Golden(64 + 40)
    g.u64(version).u64(P).u64(SIZE).u64(0).raw(uuidToBytes(id)).raw(uuidToBytes(id))
    g.u64(0).u64(SIZE).raw(uuidToBytes(id)).u64(0)
    await mkdir(join(dir, 'bucket', id), { recursive: true })
    await writeFile(join(dir, 'bucket', id, 'memfile'), model)
    await writeFile(join(dir, 'bucket', id, 'memfile.header'), g.bytes())
    const read = await runCli(['read', '--storage', storage, id, 'memfile'])
    assert.equal(read.code, 0, read.stderr)
    assert.ok(read.stdout.equals(model))

    const child = randomUUID()
    const diff = vmLike(4 * P, 80 + version)
    diff.copy(model, 4 * P)
    await writeFile(join(dir, `diff${version}`), diff)
    const r = await runCli(['push', '--storage', storage, '--build-id', child, '--parent', id, '--memfile', join(dir, `diff${version}`), '--dirty', `${4 * P}-${8 * P}`, '--codec', 'zstd'])
    assert.equal(r.code, 0, r.stderr)
    const h = decodeHeader(await readFile(join(dir, 'bucket', child, 'memfile.header')))
    assert.deepEqual([h.version, h.generation], [4, 1])
    const parent = h.builds.get(id)
    assert.deepEqual([parent?.fileSize, parent?.frames.codec], [0, 'none'], "e2b's empty entry for the uncompressed parent")
    const back = await runCli(['read', '--storage', storage, child, 'memfile'])
    assert.equal(back.code, 0, back.stderr)
    assert.ok(back.stdout.equals(model), 'every byte of the child equals the model')
  })
}
