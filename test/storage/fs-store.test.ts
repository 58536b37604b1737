/**
 * The shared backend suite on the filesystem store, plus what only a directory can get wrong:
 * atomic writes, the hidden layout, names escaping the root, file handles left open.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { after, describe, test } from 'node:test'
import { FsStore } from '../../src/storage/fs-store.ts'
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
    assert.deepEqual(await rawFiles(root), ['.meta/0f8e/memfile.zstd.json', '0f8e/memfile.zstd'])
    assert.deepEqual(await store.list(''), ['0f8e/memfile.zstd'])
  })

  test('reserved and escaping names are rejected, nothing is written outside the root', async () => {
    const root = await freshRoot()
    const store = await FsStore.open(join(root, 'store'))
    for (const bad of ['.meta/x', '.uploads/x', '../outside', 'a/../../outside']) {
      await assert.rejects(store.put(bad, randomBytes(1)), { code: 'ERR_INVALID_ARGUMENT' })
    }
    assert.deepEqual(await readdir(root), ['store'])
    assert.deepEqual(await store.list('.meta/'), [])
  })

  test('a crashed write leaves only a hidden temp file, which cleanup removes', async () => {
    const root = await freshRoot()
    const store = await FsStore.open(root)
    await writeFile(join(root, '.tmp', 'crashed.tmp'), 'partial')
    assert.deepEqual(await store.list(''), [])
    assert.equal(await store.cleanupStaleUploads({ olderThanMs: 0 }), 1)
    assert.deepEqual(await rawFiles(root), [])
  })

  test('file handles are closed on hits, misses and range errors (DESIGN §9)', async () => {
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
    for (const bad of ['s3://bucket/x', 'file://host/path', 'relative/path', 'gs://UPPER', 'gs://b']) {
      await assert.rejects(openStore(bad), (e: Error & { code?: string }) => {
        return e.code === 'ERR_INVALID_ARGUMENT' && /file:\/\/\/absolute\/path or gs:\/\/bucket/.test(e.message)
      })
    }
  })
})
