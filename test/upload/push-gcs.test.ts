/**
 * Upload checks against fake-gcs-server driven by the real @google-cloud/storage client: object names,
 * lazy reads of a 3-layer chain, and fault tests (server errors, server death) that must leave no
 * header and no orphaned parts, with a clean rerun.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { uploadBuild } from '../../src/upload/build-upload.ts'
import { StorageError } from '../../src/storage/store.ts'
import { openStore } from '../../src/storage/url.ts'
import { openStoredBuildFile } from '../../src/read/open.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type FakeGcs, startFakeGcs } from '../../bench/lib/fake-gcs.ts'
import { startFaultProxy } from '../storage/fault-proxy.ts'
import { checkRandomReads, nonZeroPages, pushChain } from './chain.ts'

const MiB = 1024 * 1024
let gcs: FakeGcs
let dir: string

before(async () => {
  gcs = await startFakeGcs()
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-push-gcs-'))
})
after(async () => {
  await gcs.stop()
  await rm(dir, { recursive: true, force: true })
})

const smallParts = { default: { partSize: 5 * MiB, uploadConcurrency: 3, frameSize: 2 * MiB } }

test('push a 3-layer chain to the emulator: exact object names, stock zstd -d, lazy reads equal the model', async () => {
  const env = { STORAGE_EMULATOR_HOST: gcs.endpoint }
  const model = await pushChain(gcs.url, dir, env)
  const [a, b, c] = model.ids
  const names = await gcs.objects(gcs.bucket)
  assert.deepEqual(
    names.sort(),
    [`${a}/memfile.header`, `${a}/memfile.zstd`, `${a}/snapfile`, `${b}/memfile`, `${b}/memfile.header`, `${c}/memfile.header`, `${c}/memfile.lz4`].sort(),
  )
  const store = await openStore(gcs.url, { gcsEndpoint: gcs.endpoint })
  try {
    const obj = await store.get(`${a}/memfile.zstd`)
    const plain = execFileSync('zstd', ['-d', '-q', '-c'], { input: obj, maxBuffer: 64 * MiB, stdio: ['pipe', 'pipe', 'pipe'] })
    // Zero pages are holes: the object holds the base's other pages, and its metadata says how many bytes that is (e2b's key).
    assert.ok(plain.equals(nonZeroPages(await readFile(join(dir, 'base.raw')))))
    const stat = await store.stat(`${a}/memfile.zstd`)
    assert.equal(stat?.metadata['uncompressed-size'], String(plain.byteLength))
  } finally {
    await store.close()
  }
  await checkRandomReads(gcs.url, model, 4, env)
})

async function memfile(size: number, seed: number): Promise<{ path: string; sha: string }> {
  const data = new VmDataGenerator(seed).next(size)
  const path = join(dir, `mem-${seed}.raw`)
  await writeFile(path, data)
  return { path, sha: createHash('sha256').update(data).digest('hex') }
}

test('storage errors mid-upload: the push fails clearly, no header, no orphaned parts; the rerun succeeds', async () => {
  const proxy = await startFaultProxy(gcs.endpoint)
  const bucket = await gcs.createBucket(`faults-${Date.now()}`)
  const { path, sha } = await memfile(24 * MiB, 5)
  const id = randomUUID()
  let uploads = 0
  // Every part upload after the second fails with 500, so retries are exhausted.
  proxy.plan = (req) => (req.method === 'POST' && (req.url ?? '').includes('/upload/') && ++uploads > 2 ? 'fail500' : 'pass')
  const store = await openStore(`gs://${bucket}`, { gcsEndpoint: proxy.endpoint, retry: { maxRetries: 1, maxDelayMs: 20 } })
  try {
    await assert.rejects(
      uploadBuild({ store, buildId: id, files: { memfile: path }, useCase: 'pause', compression: { default: { ...smallParts.default, codec: 'lz4' } } }),
      (err: Error) => {
        // The storage error of a part whose retries ran out, naming the part and the server's answer.
        assert.ok(err instanceof StorageError, String(err))
        assert.equal(err.code, 'ERR_STORAGE')
        assert.equal(err.status, 500)
        assert.match(err.message, new RegExp(`^gcs upload gs://${bucket}/${id}/memfile\\.lz4\\.parts/.*: HTTP 500: injected fault$`))
        return true
      },
    )
    assert.ok(uploads > 2, `the fault was injected (${uploads} part uploads)`)
    assert.deepEqual(await gcs.objects(bucket), [], 'no header, no data object, no part temporaries')
    proxy.plan = () => 'pass'
    await uploadBuild({ store, buildId: id, files: { memfile: path }, useCase: 'pause', compression: { default: { ...smallParts.default, codec: 'lz4' } } })
    const file = await openStoredBuildFile({ store, buildId: id, kind: 'memfile' })
    try {
      const all = await file.read(0, file.size)
      assert.equal(createHash('sha256').update(all).digest('hex'), sha)
    } finally {
      await file.close()
    }
    assert.deepEqual((await gcs.objects(bucket)).sort(), [`${id}/memfile.header`, `${id}/memfile.lz4`])
  } finally {
    await store.close()
    await proxy.close()
  }
})

// A hang would run into the test's timeout, far above what the failure takes.
test('the storage server dies mid-upload: the push fails with a clear error, not a hang', { timeout: 180_000 }, async () => {
  const doomed = await startFakeGcs('doomed')
  const { path } = await memfile(40 * MiB, 6)
  const id = randomUUID()
  const store = await openStore(doomed.url, { gcsEndpoint: doomed.endpoint, retry: { maxRetries: 1, maxDelayMs: 20 } })
  try {
    let killed = false
    await assert.rejects(
      uploadBuild({
        store,
        buildId: id,
        files: { memfile: path },
        useCase: 'build',
        compression: { default: { ...smallParts.default, codec: 'none' } },
        onProgress: (p) => {
          if (!killed && p.uploaded > 0) {
            killed = true
            void doomed.kill()
          }
        },
      }),
      (err: Error) => {
        // No HTTP answer at all: a retryable storage error naming the part, caused by the dropped connection.
        assert.ok(err instanceof StorageError, String(err))
        assert.equal(err.code, 'ERR_STORAGE')
        assert.equal(err.status, undefined)
        assert.equal(err.retryable, true)
        assert.match(err.message, new RegExp(`^gcs upload gs://doomed/${id}/memfile\\.parts/.*: (ECONNREFUSED|ECONNRESET|EPIPE|socket hang up)`))
        return true
      },
    )
    assert.ok(killed, 'the server was killed mid-upload')
  } finally {
    await store.close()
    await doomed.stop()
  }
})
