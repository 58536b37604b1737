/**
 * Fault injection under the S3 store: a proxy in front of moto's S3 server answers 500, drops the
 * connection or stalls on chosen requests; another server is killed mid-upload. The store must surface
 * a clear, coded StorageError (never hang), retry what its policy retries, and abort must still leave
 * no multipart upload or part behind on the server, also when a whole build upload fails.
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { openStoredBuildFile } from '../../src/read/open.ts'
import type { ObjectStore } from '../../src/storage/store.ts'
import { openStore } from '../../src/storage/url.ts'
import { uploadBuild } from '../../src/upload/build-upload.ts'
import { type S3Server, startS3Server } from '../../bench/lib/s3-server.ts'
import { makeParts, sha, uploadShuffled } from './backend-suite.ts'
import { FAST_RETRY, type FaultTarget, killedServer, NO_RETRY, partFaultThenAbort, stalledServer, storageError, transientFaultsRetried } from './fault-cases.ts'
import { type FaultProxy, startFaultProxy, within } from './fault-proxy.ts'

let s3: S3Server
let proxy: FaultProxy
let buckets = 0
const stores: ObjectStore[] = []
before(async () => {
  s3 = await startS3Server({ minPartSize: 1 })
  proxy = await startFaultProxy(s3.endpoint)
})
after(async () => {
  await Promise.all(stores.map((s) => s.close()))
  await proxy?.close()
  await s3?.stop()
})

/** A store on a fresh bucket, reached through the fault proxy (plan reset to pass-through). */
async function proxied(retry = NO_RETRY, timeoutMs = 5000) {
  const bucket = await s3.createBucket(`faults-${++buckets}`)
  proxy.plan = () => 'pass'
  const store = await openStore(`s3://${bucket}`, { retry, timeoutMs, s3: { ...s3.storeOptions, endpoint: proxy.endpoint } })
  stores.push(store)
  return { store, bucket, raw: () => s3.raw(bucket) }
}

const query = (req: IncomingMessage) => new URL(req.url ?? '/', 'http://x').searchParams
/** UploadPart number `n` of any upload. */
const isPart = (req: IncomingMessage, n: number) => req.method === 'PUT' && query(req).has('uploadId') && query(req).get('partNumber') === String(n)
/** CompleteMultipartUpload of any upload. */
const isComplete = (req: IncomingMessage) => req.method === 'POST' && query(req).has('uploadId')

/** The shared fault cases' view of this backend. */
const target: FaultTarget = {
  get proxy() {
    return proxy
  },
  proxied,
  isPart,
}

describe('s3 faults: errors surface clearly and abort still cleans up', () => {
  for (const fault of ['fail500', 'drop'] as const) {
    test(`${fault} on the 2nd part upload → retryable StorageError; abort leaves no upload`, async () => {
      const expected = fault === 'fail500' ? /upload part 2 s3:\/\/.*b\/memfile\.zstd: HTTP 500/ : /upload part 2 .*ECONNRESET/i
      await partFaultThenAbort(target, fault, expected, (raw) => assert.equal(raw.length, 3, 'an upload with two parts on the server'))
    })
  }

  test('transient faults are retried by the client; parts carry Content-Length', async () => {
    // The CompleteMultipartUpload fails once too.
    const { store, seen } = await transientFaultsRetried(target, 12, isComplete, (r) => r.method === 'PUT' && r.url.includes('partNumber='))
    assert.deepEqual(await store.stat('retried'), { size: 12 * 2048 - 1024, metadata: { 'uncompressed-size': '1' } })
    assert.deepEqual([seen.get('p2'), seen.get('p3'), seen.get('final')], [2, 2, 2], 'each faulty request was sent again')
  })

  test('a failed complete leaves the upload open; abort removes it with its parts', async () => {
    const { store, bucket, raw } = await proxied()
    const up = store.startUpload('tree')
    await uploadShuffled(up, makeParts(10, 512))
    proxy.plan = (req) => (isComplete(req) ? 'fail500' : 'pass')
    await assert.rejects(up.complete(), storageError(true, /complete upload s3:\/\/.*\/tree: HTTP 500/))
    assert.deepEqual(await s3.uploads(bucket), ['tree'])
    await up.abort()
    assert.deepEqual(await raw(), [])
    await assert.rejects(up.complete(), { code: 'ERR_UPLOAD_STATE' })
  })

  test('a stalled server: timeout → retryable error; an aborted signal rejects at once', async () => {
    await stalledServer(target)
  })
})

describe('s3 faults: answers cut or stalled mid-body', () => {
  test('a GET body cut halfway → retryable StorageError, never short bytes or a range error', async () => {
    const { store } = await proxied()
    const data = randomBytes(256 * 1024)
    await store.put('obj', data)
    proxy.plan = (req) => (req.method === 'GET' ? 'cutBody' : 'pass')
    const cut = storageError(true, /get s3:\/\/.*\/obj: .*(ECONNRESET|aborted|socket hang up|premature)/i)
    await within(60_000, assert.rejects(store.get('obj'), cut))
    await within(60_000, assert.rejects(store.getRange('obj', 1000, 100_000), cut))
    proxy.plan = () => 'pass'
    assert.equal(sha(await store.getRange('obj', 1000, 100_000)), sha(data.subarray(1000, 101_000)))
  })

  test('regression: a GET body that stopped halfway hung the read forever; now a retryable timeout', async () => {
    const { store } = await proxied(NO_RETRY, 300)
    await store.put('obj', randomBytes(256 * 1024))
    proxy.plan = (req) => (req.method === 'GET' ? 'stallBody' : 'pass')
    await within(60_000, assert.rejects(store.getRange('obj', 0, 200_000), storageError(true, /timeout|timed out/i)))
  })
})

describe('s3 faults: failed uploads leave nothing', () => {
  test('a build upload whose part keeps failing: the build fails, no multipart upload or object remains; the rerun succeeds', async () => {
    const { store, bucket, raw } = await proxied(NO_RETRY)
    const dir = await mkdtemp(join(tmpdir(), 'snapswarm-s3-fail-'))
    try {
      const memfile = join(dir, 'memfile')
      // Incompressible, so the compressed object needs three 5 MiB parts.
      const data = randomBytes(12 * 1024 * 1024)
      await writeFile(memfile, data)
      const buildId = randomUUID()
      proxy.plan = (req) => (isPart(req, 2) ? 'fail500' : 'pass')
      const compression = { default: { partSize: 5 * 1024 * 1024, frameSize: 2 * 1024 * 1024, uploadConcurrency: 2 } }
      await assert.rejects(
        uploadBuild({ store, buildId, files: { memfile }, useCase: 'build', compression, writer: 'fault-test' }),
        storageError(true, /upload part 2 .*HTTP 500/),
      )
      assert.ok(proxy.requests.filter((r) => r.fault === 'fail500').length >= 2, 'the part was retried before giving up')
      assert.deepEqual(await s3.uploads(bucket), [], 'no multipart upload left on the server')
      assert.deepEqual(await raw(), [], 'no object, part or claim left')
      proxy.plan = () => 'pass'
      await uploadBuild({ store, buildId, files: { memfile }, useCase: 'build', compression, writer: 'fault-test' })
      const f = await openStoredBuildFile({ store, buildId, kind: 'memfile' })
      try {
        assert.equal(sha(await f.read(0, f.size)), sha(data), 'the rerun stored the source intact')
      } finally {
        await f.close()
      }
      assert.deepEqual(await raw(), [`${buildId}/memfile.header`, `${buildId}/memfile.zstd`])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('s3 faults: the server dies mid-upload', () => {
  test('the server dies mid build upload: uploadBuild fails with a coded retryable error naming the part, not a hang', async () => {
    const doomed = await startS3Server()
    const dir = await mkdtemp(join(tmpdir(), 'snapswarm-s3-doomed-'))
    try {
      await doomed.createBucket('doomed')
      const store = await openStore('s3://doomed', { retry: FAST_RETRY, timeoutMs: 5000, s3: doomed.storeOptions })
      stores.push(store)
      const memfile = join(dir, 'memfile')
      await writeFile(memfile, randomBytes(24 * 1024 * 1024))
      const id = randomUUID()
      let killed: Promise<void> | undefined
      const compression = { default: { partSize: 5 * 1024 * 1024, uploadConcurrency: 3, frameSize: 2 * 1024 * 1024, codec: 'none' as const } }
      const upload = uploadBuild({
        store,
        buildId: id,
        files: { memfile },
        useCase: 'build',
        compression,
        onProgress: (p) => {
          if (killed === undefined && p.uploaded > 0) killed = doomed.kill()
        },
      })
      await within(60_000, assert.rejects(upload, storageError(true, new RegExp(`upload part \\d+ s3://doomed/${id}/memfile: (connection failed|endpoint unreachable): (ECONNREFUSED|ECONNRESET|EPIPE)`))))
      assert.ok(killed !== undefined, 'the server was killed after the first part landed')
    } finally {
      await doomed.kill()
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('killed S3 server → clear retryable errors, nothing hangs', async () => {
    const victim = await startS3Server()
    try {
      await victim.createBucket('victim')
      const store = await openStore('s3://victim', { retry: FAST_RETRY, timeoutMs: 2000, s3: victim.storeOptions })
      stores.push(store)
      await killedServer(store, () => victim.kill(), /endpoint unreachable: ECONNREFUSED/)
    } finally {
      await victim.kill()
    }
  })
})
