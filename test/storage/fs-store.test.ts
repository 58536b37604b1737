/**
 * The shared backend suite on the filesystem store, plus what only a directory can get wrong:
 * atomic writes, the hidden layout, names escaping the root, file handles left open.
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { after, describe, test } from 'node:test'
import { decodeHeader } from '../../src/format/header.ts'
import { pack } from '../../src/framing/pack.ts'
import { openStoredBuildFile } from '../../src/read/open.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import { uploadBuild } from '../../src/upload/build-upload.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { openStore } from '../../src/storage/url.ts'
import { backendSuite, sha } from './backend-suite.ts'

const dirs: string[] = []
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

async function freshRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-fs-store-'))
  dirs.push(dir)
  return dir
}

/** Every file under the root, hidden ones included. */
async function rawFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true })
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .sort()
}

backendSuite({
  name: 'fs',
  async open() {
    const root = await freshRoot()
    return { store: await FsStore.open(root), raw: () => rawFiles(root) }
  },
})

describe('fs: layout and safety', () => {
  test('objects are plain files laid out like the bucket; internals are hidden', async () => {
    const root = await freshRoot()
    const store = await openStore(`file://${root}`)
    assert.equal(store.url, `file://${root}`)
    const data = randomBytes(1000)
    await store.put('0f8e/memfile.zstd', data, { metadata: { 'uncompressed-size': '2048' } })
    assert.equal(sha(await readFile(join(root, '0f8e/memfile.zstd'))), sha(data))
    // The size is e2b's sidecar beside the object (its Size() reads it); nothing else is written.
    assert.deepEqual(await rawFiles(root), ['0f8e/memfile.zstd', '0f8e/memfile.zstd.uncompressed-size'])
    assert.equal(await readFile(join(root, '0f8e/memfile.zstd.uncompressed-size'), 'utf8'), '2048')
    assert.deepEqual(await store.list(''), ['0f8e/memfile.zstd'])
    // Other keys go to .meta/; deleting removes every file of the object.
    await store.put('0f8e/x', data, { metadata: { 'uncompressed-size': '7', other: 'v' } })
    assert.deepEqual(await store.stat('0f8e/x'), { size: 1000, metadata: { 'uncompressed-size': '7', other: 'v' } })
    await store.delete('0f8e/x')
    await store.delete('0f8e/memfile.zstd')
    assert.deepEqual(await rawFiles(root), [])
  })

  test('reserved and escaping names are rejected, nothing is written outside the root', async () => {
    const root = await freshRoot()
    const store = await FsStore.open(join(root, 'store'))
    for (const bad of ['.meta/x', '.uploads/x', '../outside', 'a/../../outside', 'b/memfile.zstd.uncompressed-size']) {
      await assert.rejects(store.put(bad, randomBytes(1)), { code: 'ERR_INVALID_ARGUMENT' })
    }
    assert.deepEqual(await readdir(root), ['store'])
    assert.deepEqual(await store.list('.meta/'), [])
  })

  test('a crashed write leaves only a hidden temp file, which cleanup removes', async () => {
    const root = await freshRoot()
    const store = await FsStore.open(root)
    await mkdir(join(root, '.tmp'))
    await writeFile(join(root, '.tmp', 'crashed.tmp'), 'partial')
    assert.deepEqual(await store.list(''), [])
    assert.equal(await store.cleanupStaleUploads({ olderThanMs: 0 }), 1)
    assert.deepEqual(await rawFiles(root), [])
  })

  test('file handles are closed on hits, misses and range errors', async () => {
    const root = await freshRoot()
    const store = await FsStore.open(root)
    await store.put('f', randomBytes(4096))
    const fds = async () => (await readdir('/proc/self/fd')).length
    const base = await fds()
    for (let i = 0; i < 200; i++) {
      await store.getRange('f', i, 16)
      await store.get('f')
      await assert.rejects(store.getRange('f', 4090, 16), { code: 'ERR_RANGE' })
      await assert.rejects(store.getRange('missing', 0, 1), { code: 'ERR_NOT_FOUND' })
      await assert.rejects(store.get('f', { maxBytes: 1 }), { code: 'ERR_LIMIT' })
    }
    assert.ok((await fds()) <= base + 2, `fds grew from ${base} to ${await fds()}`)
  })

  test('an object where a "directory" exists fails with a clear storage error', async () => {
    const store = await FsStore.open(await freshRoot())
    await store.put('a/b/c', randomBytes(1))
    await assert.rejects(store.put('a/b', randomBytes(1)), (e: Error & { code?: string; retryable?: boolean }) => {
      return e.code === 'ERR_STORAGE' && e.retryable === false && /a\/b/.test(e.message)
    })
  })

  test('openStore rejects what it cannot serve, with the accepted forms in the message', async () => {
    for (const bad of ['file://host/path', 'relative/path', 'gs://UPPER', 'gs://b']) {
      await assert.rejects(openStore(bad), (e: Error & { code?: string }) => {
        return e.code === 'ERR_INVALID_ARGUMENT' && /file:\/\/\/absolute\/path, gs:\/\/bucket\[\/prefix\] or s3:\/\/bucket/.test(e.message)
      })
    }
  })
})

describe("fs: e2b's bucket form", () => {
  test('a build written as e2b writes it (data, header, `.uncompressed-size` sidecar; no .meta, .tmp, .uploads) reads back byte-exact and nothing is created', async () => {
    const root = await freshRoot()
    const id = randomUUID()
    const src = new VmDataGenerator(17).next(3 * 1024 * 1024 + 8192)
    const input = join(root, 'input')
    await writeFile(input, src)
    const packed = join(root, 'packed')
    await pack({ input, outDir: packed, kind: 'memfile', buildId: id, codec: 'zstd', level: 3, frameSize: 1024 * 1024, blockSize: 4096, workers: 1, elideZeros: true })
    const bucket = join(root, 'bucket')
    await mkdir(join(bucket, id), { recursive: true })
    for (const f of ['memfile.zstd', 'memfile.header']) await writeFile(join(bucket, id, f), await readFile(join(packed, f)))
    const storedSize = decodeHeader(await readFile(join(packed, 'memfile.header'))).builds.get(id)!.fileSize
    await writeFile(join(bucket, id, 'memfile.zstd.uncompressed-size'), String(storedSize)) // strconv.FormatInt: no newline
    await writeFile(join(bucket, id, 'snapfile.uncompressed-size'), 'not a number') // e2b ignores what does not parse

    const store = await FsStore.open(bucket, { create: false })
    assert.deepEqual(await store.stat(`${id}/memfile.zstd`), { size: (await readFile(join(packed, 'memfile.zstd'))).byteLength, metadata: { 'uncompressed-size': String(storedSize) } })
    assert.deepEqual(await store.list(`${id}/`), [`${id}/memfile.header`, `${id}/memfile.zstd`], 'sidecars are never listed as objects')
    const f = await openStoredBuildFile({ store, buildId: id, kind: 'memfile' })
    try {
      assert.ok(Buffer.from(await f.read(0, src.byteLength)).equals(src))
    } finally {
      await f.close()
    }
    assert.deepEqual(await readdir(bucket), [id], 'reading created nothing in the bucket')
  })

  test("regression: a pushed build's data object carries e2b's size sidecar (e2b's Size() returned the compressed size) and its prefix holds only what e2b writes", async () => {
    const root = await freshRoot()
    const store = await FsStore.open(join(root, 'bucket'))
    const input = join(root, 'mem')
    await writeFile(input, new VmDataGenerator(3, 45).next(2 * 1024 * 1024))
    const id = randomUUID()
    await uploadBuild({ store, buildId: id, files: { memfile: input }, useCase: 'build', blockSize: { memfile: 4096 } })
    assert.deepEqual(await readdir(join(root, 'bucket', id)), ['memfile.header', 'memfile.zstd', 'memfile.zstd.uncompressed-size'])
    const header = decodeHeader(await readFile(join(root, 'bucket', id, 'memfile.header')))
    assert.equal(await readFile(join(root, 'bucket', id, 'memfile.zstd.uncompressed-size'), 'utf8'), String(header.builds.get(id)!.fileSize))
    assert.ok(!(await readdir(join(root, 'bucket'))).includes('.meta'), 'no .meta/ when only sizes are stored')
  })
})

test('a size sidecar that is oversized, negative, fractional or not a number is ignored, read within a bound', async () => {
  const root = await freshRoot()
  const store = await FsStore.open(root)
  await store.put('b/o', randomBytes(10))
  for (const bad of ['9'.repeat(4 * 1024 * 1024), '-5', '1.5', 'abc', '', '99999999999999999999']) {
    await writeFile(join(root, 'b/o.uncompressed-size'), bad)
    assert.deepEqual(await store.stat('b/o'), { size: 10, metadata: {} }, JSON.stringify(bad.slice(0, 20)))
  }
  await writeFile(join(root, 'b/o.uncompressed-size'), '123\n')
  assert.deepEqual(await store.stat('b/o'), { size: 10, metadata: { 'uncompressed-size': '123' } })
})
