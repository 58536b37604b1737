/**
 * The one behaviour suite every ObjectStore backend must pass (a shared suite, as tus does).
 * A backend supplies a fresh, empty store per test and a raw view of everything it holds (hidden
 * temporaries included), so "no parts or temporaries remain" is checked on the real storage.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { FileKind } from '../../src/format/types.ts'
import { openStoredBuildFile } from '../../src/read/open.ts'
import type { ObjectStore } from '../../src/storage/store.ts'
import { uploadBuild } from '../../src/upload/build-upload.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'

export interface BackendUnderTest {
  store: ObjectStore
  /** Every file/object the backend holds for this store, internal ones included, sorted. */
  raw(): Promise<string[]>
}

export interface Backend {
  name: string
  open(): Promise<BackendUnderTest>
}

export const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c
const isAbort = (err: unknown) => (err as Error).name === 'AbortError'

/** `n` random parts of `size` bytes (the last one shorter, as in real uploads). */
export function makeParts(n: number, size: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => randomBytes(i === n - 1 ? Math.max(1, size >> 1) : size))
}

/** Uploads parts concurrently, in a shuffled order, at most `limit` at once. */
export async function uploadShuffled(up: { uploadPart(n: number, d: Uint8Array): Promise<void> }, parts: Buffer[], limit = 8) {
  const order = parts.map((_, i) => i + 1).sort(() => Math.random() - 0.5)
  const run = async () => {
    for (let n = order.pop(); n !== undefined; n = order.pop()) await up.uploadPart(n, parts[n - 1])
  }
  await Promise.all(Array.from({ length: limit }, run))
}

export function backendSuite(backend: Backend): void {
  const withStore = (name: string, fn: (b: BackendUnderTest) => Promise<void>) =>
    test(name, async () => {
      const b = await backend.open()
      try {
        await fn(b)
      } finally {
        await b.store.close()
      }
    })

  describe(`${backend.name}: objects`, () => {
    withStore('put/get round trip, including an empty object', async ({ store }) => {
      const data = randomBytes(300 * 1024)
      await store.put('b1/memfile.zstd', data)
      assert.equal(sha(await store.get('b1/memfile.zstd')), sha(data))
      await store.put('b1/empty', new Uint8Array(0))
      assert.equal((await store.get('b1/empty')).byteLength, 0)
      await assert.rejects(store.get('b1/missing'), code('ERR_NOT_FOUND'))
    })

    withStore('stat with metadata, exists', async ({ store }) => {
      await store.put('b/x.zstd', randomBytes(1000), { metadata: { 'uncompressed-size': '4096' } })
      assert.deepEqual(await store.stat('b/x.zstd'), { size: 1000, metadata: { 'uncompressed-size': '4096' } })
      assert.equal(await store.exists('b/x.zstd'), true)
      assert.equal(await store.stat('b/nope'), null)
      assert.equal(await store.exists('b/nope'), false)
      assert.equal(await store.exists('b'), false, 'a "directory" prefix is no object')
    })

    withStore('ranged gets at the edges', async ({ store }) => {
      const data = randomBytes(10_000)
      await store.put('r', data)
      assert.deepEqual(Buffer.from(await store.getRange('r', 0, 1)), data.subarray(0, 1))
      assert.deepEqual(Buffer.from(await store.getRange('r', 9_999, 1)), data.subarray(9_999))
      assert.deepEqual(Buffer.from(await store.getRange('r', 1234, 5000)), data.subarray(1234, 6234))
      assert.equal(sha(await store.getRange('r', 0, 10_000)), sha(data))
      assert.equal((await store.getRange('r', 10_000, 0)).byteLength, 0)
      await assert.rejects(store.getRange('r', 9_999, 2), code('ERR_RANGE'))
      await assert.rejects(store.getRange('r', 10_000, 1), code('ERR_RANGE'))
      await assert.rejects(store.getRange('r', 20_000, 10), code('ERR_RANGE'))
      await assert.rejects(store.getRange('r', -1, 10), code('ERR_INVALID_ARGUMENT'))
      await assert.rejects(store.getRange('missing', 0, 10), code('ERR_NOT_FOUND'))
    })

    withStore('get with maxBytes', async ({ store }) => {
      await store.put('m', randomBytes(2048))
      assert.equal((await store.get('m', { maxBytes: 2048 })).byteLength, 2048)
      await assert.rejects(store.get('m', { maxBytes: 2047 }), code('ERR_LIMIT'))
    })

    withStore('delete is idempotent', async ({ store }) => {
      await store.put('d/1', randomBytes(10), { metadata: { k: 'v' } })
      await store.delete('d/1')
      assert.equal(await store.exists('d/1'), false)
      await store.delete('d/1')
      await store.delete('never/existed')
      assert.deepEqual(await store.list(''), [])
    })

    withStore('list by prefix: sorted, string prefix semantics', async ({ store }) => {
      for (const n of ['a/2', 'a/1', 'a/b/3', 'ab/4', 'b/5']) await store.put(n, randomBytes(3))
      assert.deepEqual(await store.list('a/'), ['a/1', 'a/2', 'a/b/3'])
      assert.deepEqual(await store.list('a'), ['a/1', 'a/2', 'a/b/3', 'ab/4'])
      assert.deepEqual(await store.list('a/b'), ['a/b/3'])
      assert.deepEqual(await store.list(''), ['a/1', 'a/2', 'a/b/3', 'ab/4', 'b/5'])
      assert.deepEqual(await store.list('zzz/'), [])
      assert.deepEqual(await store.list('../'), [])
    })

    withStore('writes are create-only: put and complete never replace an object', async ({ store, raw }) => {
      const v1 = randomBytes(100)
      await store.put('o', v1, { metadata: { 'uncompressed-size': '1' } })
      await assert.rejects(store.put('o', randomBytes(50)), code('ERR_OBJECT_EXISTS'))
      await assert.rejects(store.put('o', randomBytes(50), { metadata: { 'uncompressed-size': '2' } }), code('ERR_OBJECT_EXISTS'))
      const before = await raw()
      const up = store.startUpload('o', { metadata: { 'uncompressed-size': '3' } })
      await up.uploadPart(1, randomBytes(20))
      await up.uploadPart(2, randomBytes(30))
      await assert.rejects(up.complete(), code('ERR_OBJECT_EXISTS'))
      await up.abort()
      const empty = store.startUpload('o')
      await assert.rejects(empty.complete(), code('ERR_OBJECT_EXISTS'))
      await empty.abort()
      assert.equal(sha(await store.get('o')), sha(v1), 'the first object is intact')
      assert.deepEqual(await store.stat('o'), { size: 100, metadata: { 'uncompressed-size': '1' } })
      assert.deepEqual(await raw(), before, 'the losers left no parts or temporaries')
      // Deleting frees the name for a new object.
      await store.delete('o')
      const v2 = randomBytes(50)
      await store.put('o', v2)
      assert.deepEqual(await store.stat('o'), { size: 50, metadata: {} })
      assert.equal(sha(await store.get('o')), sha(v2))
    })

    withStore('concurrent create-only writers of one name: exactly one wins, its bytes stay', async ({ store }) => {
      const puts = Array.from({ length: 6 }, () => randomBytes(64 * 1024))
      const results = await Promise.allSettled(puts.map((d) => store.put('race/put', d)))
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []))
      assert.equal(won.length, 1, `exactly one put wins, found ${won.length}`)
      for (const r of results) if (r.status === 'rejected') assert.ok(code('ERR_OBJECT_EXISTS')(r.reason), String(r.reason))
      assert.equal(sha(await store.get('race/put')), sha(puts[won[0]]))
    })

    withStore('names that escape or collide with internals are rejected', async ({ store }) => {
      for (const bad of ['', '/abs', '../x', 'a/../../x', 'a//b', 'a/./b', 'a/', 'x.parts/1', 'a\\b']) {
        await assert.rejects(store.put(bad, randomBytes(1)), code('ERR_INVALID_ARGUMENT'), bad)
        await assert.rejects(store.get(bad), code('ERR_INVALID_ARGUMENT'), bad)
      }
      assert.throws(() => store.startUpload('../x'), code('ERR_INVALID_ARGUMENT'))
    })
  })

  describe(`${backend.name}: multipart uploads`, () => {
    withStore('concurrent out-of-order parts assemble in part order', async ({ store, raw }) => {
      const before = await raw()
      const parts = makeParts(5, 64 * 1024)
      const up = store.startUpload('b/memfile.zstd', { metadata: { 'uncompressed-size': '999' } })
      await Promise.all([3, 1, 5, 2, 4].map((n) => up.uploadPart(n, parts[n - 1])))
      assert.equal(await store.exists('b/memfile.zstd'), false, 'nothing visible before complete')
      assert.deepEqual(await store.list(''), [], 'parts are never listed')
      await up.complete()
      assert.equal(sha(await store.get('b/memfile.zstd')), sha(Buffer.concat(parts)))
      assert.deepEqual((await store.stat('b/memfile.zstd'))?.metadata, { 'uncompressed-size': '999' })
      const added = (await raw()).filter((n) => !before.includes(n))
      assert.ok(added.length <= 2, `only the object (and its metadata) remain, found ${added}`)
      await up.abort() // no-op after complete
      assert.equal(await store.exists('b/memfile.zstd'), true)
    })

    withStore('more than 32 parts (compose tree) and a retried part', async ({ store, raw }) => {
      const before = await raw()
      const parts = makeParts(70, 1024)
      const up = store.startUpload('big')
      await uploadShuffled(up, parts)
      parts[6] = randomBytes(1024)
      await up.uploadPart(7, parts[6])
      await up.complete()
      assert.equal(sha(await store.get('big')), sha(Buffer.concat(parts)))
      assert.equal((await raw()).filter((n) => !before.includes(n)).length, 1, 'no intermediates left')
    })

    withStore('abort leaves no parts; later calls fail clearly', async ({ store, raw }) => {
      const before = await raw()
      const up = store.startUpload('x/rootfs.ext4.zstd', { metadata: { a: 'b' } })
      for (const [i, p] of makeParts(3, 4096).entries()) await up.uploadPart(i + 1, p)
      await up.abort()
      assert.deepEqual(await raw(), before)
      assert.equal(await store.exists('x/rootfs.ext4.zstd'), false)
      await assert.rejects(up.complete(), code('ERR_UPLOAD_STATE'))
      await assert.rejects(up.uploadPart(4, randomBytes(10)), code('ERR_UPLOAD_STATE'))
      await up.abort()
    })

    withStore('abort waits for parts still in flight', async ({ store, raw }) => {
      const before = await raw()
      const up = store.startUpload('inflight')
      const writes = makeParts(6, 128 * 1024).map((p, i) => up.uploadPart(i + 1, p))
      await up.abort()
      await Promise.allSettled(writes)
      assert.deepEqual(await raw(), before)
    })

    withStore('missing parts, bad part numbers, zero parts', async ({ store }) => {
      const up = store.startUpload('gap')
      await up.uploadPart(1, randomBytes(10))
      await up.uploadPart(3, randomBytes(10))
      await assert.rejects(up.complete(), (e) => code('ERR_UPLOAD_STATE')(e) && /part 2 is missing/.test(String(e)))
      for (const n of [0, 10_001, 1.5]) await assert.rejects(up.uploadPart(n, randomBytes(1)), code('ERR_INVALID_ARGUMENT'))
      await up.uploadPart(2, randomBytes(10))
      await up.complete()
      assert.equal((await store.stat('gap'))?.size, 30)
      const empty = store.startUpload('empty', { metadata: { 'uncompressed-size': '0' } })
      await empty.complete()
      assert.deepEqual(await store.stat('empty'), { size: 0, metadata: { 'uncompressed-size': '0' } })
    })

    withStore('cleanupStaleUploads removes what a crashed process left', async ({ store, raw }) => {
      const before = await raw()
      const up = store.startUpload('crash/memfile')
      await up.uploadPart(1, randomBytes(100))
      await up.uploadPart(2, randomBytes(100))
      // The process "dies": nobody calls complete or abort.
      assert.ok(store.cleanupStaleUploads, 'every backend can clean up after crashes')
      assert.equal(await store.cleanupStaleUploads({ olderThanMs: 3_600_000 }), 0, 'young uploads are kept')
      assert.equal(await store.cleanupStaleUploads({ prefix: 'other/', olderThanMs: 0 }), 0)
      assert.ok((await store.cleanupStaleUploads({ prefix: 'crash/', olderThanMs: 0 })) > 0)
      await store.cleanupStaleUploads({ olderThanMs: 0 })
      assert.deepEqual(await raw(), before)
    })
  })

  describe(`${backend.name}: builds`, () => {
    withStore('two concurrent writers of one build: exactly one wins, every reader reads its bytes', async ({ store }) => {
      const dir = await mkdtemp(join(tmpdir(), 'snapswarm-race-'))
      try {
        // Two contents of several objects each (memfile and rootfs data, a blob, two headers), so a
        // writer could win some objects and lose others if nothing decided the whole build.
        const writers = await Promise.all(['a', 'b'].map((w, i) => buildFiles(dir, w, 40 + i)))
        const id = randomUUID()
        const small = { default: { partSize: 5 * 1024 * 1024, frameSize: 2 * 1024 * 1024, uploadConcurrency: 2 } }
        const results = await Promise.allSettled(
          writers.map((w) => uploadBuild({ store, buildId: id, files: w.files, useCase: 'build', compression: small, writer: w.name })),
        )
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []))
        assert.equal(won.length, 1, `exactly one writer wins, found ${won.length}: ${results.map((r) => r.status)}`)
        const loser = results[1 - won[0]] as PromiseRejectedResult
        assert.ok(code('ERR_BUILD_EXISTS')(loser.reason), String(loser.reason))
        const winner = writers[won[0]]
        for (const kind of ['memfile', 'rootfs'] as const) {
          assert.equal(sha(await readStored(store, id, kind)), sha(winner.data[kind]), `${kind}: the winner's bytes`)
        }
        assert.equal(sha(await store.get(`${id}/snapfile`)), sha(winner.snapfile))
        assert.deepEqual(await store.list(`${id}/`), [`${id}/memfile.header`, `${id}/memfile.zstd`, `${id}/rootfs.ext4.header`, `${id}/rootfs.ext4.zstd`, `${id}/snapfile`])
        // A later writer of the finished build loses too, and changes nothing.
        const late = writers[1 - won[0]]
        await assert.rejects(uploadBuild({ store, buildId: id, files: late.files, useCase: 'build', compression: small, writer: late.name }), code('ERR_BUILD_EXISTS'))
        assert.equal(sha(await readStored(store, id, 'memfile')), sha(winner.data.memfile))
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })
  })

  describe(`${backend.name}: abort signals`, () => {
    withStore('an aborted signal rejects every call with AbortError', async ({ store }) => {
      await store.put('s', randomBytes(100))
      const ac = new AbortController()
      ac.abort()
      await assert.rejects(store.put('s2', randomBytes(10), { signal: ac.signal }), isAbort)
      assert.equal(await store.exists('s2'), false)
      await assert.rejects(store.getRange('s', 0, 10, ac.signal), isAbort)
      await assert.rejects(store.get('s', { signal: ac.signal }), isAbort)
      const up = store.startUpload('s3')
      await assert.rejects(up.uploadPart(1, randomBytes(10), ac.signal), isAbort)
      await up.uploadPart(1, randomBytes(10))
      await assert.rejects(up.complete(ac.signal), isAbort)
      await up.complete()
      assert.equal((await store.stat('s3'))?.size, 10)
    })

    withStore('stat, exists, delete and list take a signal too: an aborted one rejects with its reason, nothing deleted', async ({ store }) => {
      await store.put('dir/kept', randomBytes(10))
      const ac = new AbortController()
      const reason = new Error('caller gave up')
      ac.abort(reason)
      const isReason = (err: unknown) => err === reason
      await assert.rejects(store.stat('dir/kept', ac.signal), isReason)
      await assert.rejects(store.exists('dir/kept', ac.signal), isReason)
      await assert.rejects(store.delete('dir/kept', ac.signal), isReason)
      await assert.rejects(store.list('dir/', ac.signal), isReason)
      assert.equal(await store.exists('dir/kept'), true, 'the aborted delete removed nothing')
      const live = new AbortController().signal
      assert.equal((await store.stat('dir/kept', live))?.size, 10)
      assert.deepEqual(await store.list('dir/', live), ['dir/kept'])
      await store.delete('dir/kept', live)
      assert.equal(await store.exists('dir/kept', live), false)
    })

    withStore('a signal aborted mid-call rejects promptly', async ({ store }) => {
      await store.put('big', randomBytes(4 * 1024 * 1024))
      const ac = new AbortController()
      const p = store.get('big', { signal: ac.signal })
      queueMicrotask(() => ac.abort())
      // Rejected with the abort: a get that ignored the signal would resolve with the object instead.
      await assert.rejects(p, isAbort)
    })
  })
}

interface WriterFiles {
  name: string
  files: { memfile: string; rootfs: string; snapfile: string }
  data: Record<FileKind, Buffer>
  snapfile: Buffer
}

async function buildFiles(dir: string, name: string, seed: number): Promise<WriterFiles> {
  const gen = new VmDataGenerator(seed)
  const data = { memfile: gen.next(6 * 1024 * 1024), rootfs: gen.next(3 * 1024 * 1024) }
  const snapfile = randomBytes(10_000)
  const files = { memfile: join(dir, `${name}-mem`), rootfs: join(dir, `${name}-rootfs`), snapfile: join(dir, `${name}-snap`) }
  await Promise.all([writeFile(files.memfile, data.memfile), writeFile(files.rootfs, data.rootfs), writeFile(files.snapfile, snapfile)])
  return { name, files, data, snapfile }
}

/** The whole virtual file of a stored build, read through the normal read path. */
async function readStored(store: ObjectStore, buildId: string, kind: FileKind): Promise<Uint8Array> {
  const f = await openStoredBuildFile({ store, buildId, kind })
  try {
    return await f.read(0, f.size)
  } finally {
    await f.close()
  }
}
