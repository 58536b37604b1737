/**
 * The build claim (src/upload/claim.ts) on a real filesystem store and the real CLI: a writer that
 * died mid-upload finishes on a rerun of the same content, anyone else is refused; objects stored
 * without a claim are never touched; a failed upload frees the id; `snapswarm push` of a taken id
 * fails with ERR_BUILD_EXISTS and changes nothing.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FileKind } from '../../src/format/types.ts'
import { openStoredBuildFile } from '../../src/read/open.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import type { ObjectStore } from '../../src/storage/store.ts'
import { uploadBuild } from '../../src/upload/build-upload.ts'
import { claimObjectName } from '../../src/format/layout.ts'
import { takeClaim } from '../../src/upload/claim.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { runCli } from '../../bench/lib/cli.ts'

const MiB = 1024 * 1024
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c
const compression = { default: { partSize: 5 * MiB, frameSize: 2 * MiB, uploadConcurrency: 2 } }

let dir: string
let store: FsStore
let n = 0

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-claim-'))
  store = await FsStore.open(join(dir, 'bucket'))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function memfile(size: number): Promise<{ path: string; data: Buffer }> {
  const data = new VmDataGenerator(++n).next(size)
  const path = join(dir, `mem-${n}`)
  await writeFile(path, data)
  return { path, data }
}

async function readStored(buildId: string, kind: FileKind = 'memfile'): Promise<Uint8Array> {
  const f = await openStoredBuildFile({ store, buildId, kind })
  try {
    return await f.read(0, f.size)
  } finally {
    await f.close()
  }
}

/** The store as a writer killed before its headers sees it: header writes and every delete fail. */
function dyingStore(inner: ObjectStore): ObjectStore {
  const killed = () => Promise.reject(new Error('the writer was killed'))
  return {
    url: inner.url,
    put: (name, data, opts) => (name.endsWith('.header') ? killed() : inner.put(name, data, opts)),
    startUpload: (name, opts) => inner.startUpload(name, opts),
    getRange: (name, offset, length, signal) => inner.getRange(name, offset, length, signal),
    get: (name, opts) => inner.get(name, opts),
    stat: (name) => inner.stat(name),
    exists: (name) => inner.exists(name),
    delete: () => killed(),
    list: (prefix) => inner.list(prefix),
    close: () => inner.close(),
  }
}

test('a writer that died mid-upload finishes on a rerun of the same content; other writers and other content are refused', async () => {
  const a = await memfile(5 * MiB)
  const id = randomUUID()
  const files = { memfile: a.path }
  await assert.rejects(uploadBuild({ store: dyingStore(store), buildId: id, files, useCase: 'build', compression, writer: 'node:A' }), /killed/)
  const left = await store.list(`${id}/`)
  assert.deepEqual(left, [`${id}/memfile.zstd`, claimObjectName(id)].sort(), 'the claim and the data object are left, no header')

  const other = await memfile(5 * MiB)
  await assert.rejects(uploadBuild({ store, buildId: id, files, useCase: 'build', compression, writer: 'node:B' }), code('ERR_BUILD_EXISTS'))
  await assert.rejects(uploadBuild({ store, buildId: id, files: { memfile: other.path }, useCase: 'build', compression, writer: 'node:A' }), code('ERR_BUILD_EXISTS'))
  await assert.rejects(
    uploadBuild({ store, buildId: id, files, useCase: 'build', compression: { default: { ...compression.default, codec: 'lz4' } }, writer: 'node:A' }),
    code('ERR_BUILD_EXISTS'),
    'the same content with other settings would store other bytes',
  )
  assert.deepEqual(await store.list(`${id}/`), left, 'the refused writers changed nothing')

  await uploadBuild({ store, buildId: id, files, useCase: 'build', compression, writer: 'node:A' })
  assert.deepEqual(await store.list(`${id}/`), [`${id}/memfile.header`, `${id}/memfile.zstd`], 'complete, and the claim is gone')
  assert.equal(sha(await readStored(id)), sha(a.data))
  await assert.rejects(uploadBuild({ store, buildId: id, files, useCase: 'build', compression, writer: 'node:A' }), code('ERR_BUILD_EXISTS'), 'a finished build is never written again')
})

test('objects stored without a claim (another system, an older version) make a writer fail and stay untouched', async () => {
  const id = randomUUID()
  await store.put(`${id}/memfile.zstd`, Buffer.from('stored by someone else'))
  const a = await memfile(3 * MiB)
  await assert.rejects(uploadBuild({ store, buildId: id, files: { memfile: a.path }, useCase: 'build', compression, writer: 'node:A' }), code('ERR_BUILD_EXISTS'))
  assert.deepEqual(await store.list(`${id}/`), [`${id}/memfile.zstd`], 'no claim left behind')
  assert.equal(Buffer.from(await store.get(`${id}/memfile.zstd`)).toString(), 'stored by someone else')
})

test('a failed upload removes what it wrote and frees the id for another writer', async () => {
  const id = randomUUID()
  const failing: ObjectStore = Object.assign(Object.create(null), dyingStore(store), { delete: (name: string) => store.delete(name) })
  const a = await memfile(3 * MiB)
  await assert.rejects(uploadBuild({ store: failing, buildId: id, files: { memfile: a.path }, useCase: 'build', compression, writer: 'node:A' }), /killed/)
  assert.deepEqual(await store.list(`${id}/`), [])
  const b = await memfile(3 * MiB)
  await uploadBuild({ store, buildId: id, files: { memfile: b.path }, useCase: 'build', compression, writer: 'node:B' })
  assert.equal(sha(await readStored(id)), sha(b.data))
})

test('regression: snapswarm push of a build id another writer holds wrote under it (item 3): now ERR_BUILD_EXISTS, exit non-zero, nothing changed', async () => {
  const storage = pathToFileURL(join(dir, 'bucket')).href
  const first = await memfile(4 * MiB)
  const second = await memfile(4 * MiB)
  const push = (id: string, path: string) => runCli(['push', '--storage', storage, '--build-id', id, '--memfile', path, '--codec', 'lz4'])

  // Another writer holds the id (its upload is running): the push must not write under it.
  const running = randomUUID()
  await takeClaim(store, running, { writer: 'node:elsewhere', digest: 'f'.repeat(64) })
  const r1 = await push(running, second.path)
  assert.notEqual(r1.code, 0, 'the push fails')
  assert.match(r1.stderr, /ERR_BUILD_EXISTS/)
  assert.deepEqual(await store.list(`${running}/`), [claimObjectName(running)], 'nothing written under the other writer')

  // A finished build: the second push fails and the stored bytes are the first push's.
  const done = randomUUID()
  const ok = await push(done, first.path)
  assert.equal(ok.code, 0, ok.stderr)
  const header = await readFile(join(dir, 'bucket', done, 'memfile.header'))
  const r2 = await push(done, second.path)
  assert.notEqual(r2.code, 0)
  assert.match(r2.stderr, /ERR_BUILD_EXISTS/)
  assert.ok(header.equals(await readFile(join(dir, 'bucket', done, 'memfile.header'))), 'the header is unchanged')
  assert.equal(sha(await readStored(done)), sha(first.data))
})
