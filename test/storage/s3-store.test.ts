/**
 * The shared backend suite on S3Store against moto's S3 server (a real S3 REST API server, not a
 * mock), plus what only S3 can get wrong: the s3:// prefix, the endpoint and credentials from the AWS
 * environment, the errors of a missing bucket and of refused credentials.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import type { S3Store } from '../../src/storage/s3-store.ts'
import { openStore } from '../../src/storage/url.ts'
import { type S3Server, startS3Server } from '../../bench/lib/s3-server.ts'
import { backendSuite, sha } from './backend-suite.ts'

let s3: S3Server
let buckets = 0
before(async () => {
  // The suite uses parts of a few KiB: lower the server's 5 MiB minimum for non-last parts.
  s3 = await startS3Server({ minPartSize: 1 })
})
after(async () => {
  await s3?.stop()
})

// Run under a prefix: every key goes through the prefix mapping, and raw() sees the real keys.
backendSuite({
  name: 's3',
  async open() {
    const bucket = await s3.createBucket(`suite-${++buckets}`)
    const store = await openStore(`s3://${bucket}/tenant/a`, { s3: s3.storeOptions })
    return { store, raw: () => s3.raw(bucket) }
  },
})

describe('s3: prefix, environment, errors', () => {
  test('s3://bucket/prefix: prefix prepended to keys, stripped from list, stores isolated', async () => {
    const bucket = await s3.createBucket('prefixes')
    const a = await openStore(`s3://${bucket}/builds/`, { s3: s3.storeOptions })
    const b = await openStore(`s3://${bucket}/builds2`, { s3: s3.storeOptions })
    const root = await openStore(`s3://${bucket}`, { s3: s3.storeOptions })
    try {
      assert.equal(a.url, `s3://${bucket}/builds`)
      await a.put('0f8e/memfile', randomBytes(10))
      await b.put('0f8e/memfile', randomBytes(20))
      assert.deepEqual(await a.list(''), ['0f8e/memfile'])
      assert.equal((await a.stat('0f8e/memfile'))?.size, 10)
      assert.deepEqual(await root.list(''), ['builds/0f8e/memfile', 'builds2/0f8e/memfile'])
      const up = a.startUpload('0f8e/rootfs.ext4')
      await up.uploadPart(1, randomBytes(5))
      assert.deepEqual(await root.list(''), ['builds/0f8e/memfile', 'builds2/0f8e/memfile'], 'parts unlisted')
      assert.deepEqual(await s3.uploads(bucket), ['builds/0f8e/rootfs.ext4'], 'a native multipart upload on the server')
      await up.abort()
      assert.deepEqual(await s3.uploads(bucket), [])
    } finally {
      await Promise.all([a.close(), b.close(), root.close()])
    }
  })

  test('endpoint, region and credentials from the AWS environment (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL)', async () => {
    const names = ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']
    const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]))
    const bucket = await s3.createBucket('from-env')
    try {
      for (const endpointVar of ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL']) {
        for (const n of names) delete process.env[n]
        Object.assign(process.env, s3.env)
        delete process.env.AWS_ENDPOINT_URL_S3
        process.env[endpointVar] = `${s3.endpoint}/`
        const store = await openStore(`s3://${bucket}/env`)
        const data = randomBytes(100)
        await store.put('x', data, { metadata: { 'uncompressed-size': '7' } })
        assert.equal(sha(await store.get('x')), sha(data), endpointVar)
        assert.deepEqual(await store.stat('x'), { size: 100, metadata: { 'uncompressed-size': '7' } })
        assert.deepEqual(await store.list(''), ['x'])
        await store.delete('x')
        await store.close()
      }
    } finally {
      for (const n of names) {
        if (saved[n] === undefined) delete process.env[n]
        else process.env[n] = saved[n]
      }
    }
  })

  test('regression: a missing S3 bucket was ERR_STORAGE where GCS says ERR_BUCKET_NOT_FOUND; named as such, not as a missing object', async () => {
    const store = await openStore('s3://no-such-bucket-here/p', { s3: s3.storeOptions })
    try {
      const missingBucket = (e: unknown) => {
        const err = e as { code?: string; retryable?: boolean; message: string }
        assert.equal(err.code, 'ERR_BUCKET_NOT_FOUND', err.message)
        assert.notEqual(err.retryable, true, 'no retry can create the bucket')
        assert.match(err.message, /s3:\/\/no-such-bucket-here\/p\/b\/memfile\.header: the bucket does not exist/)
        return true
      }
      await assert.rejects(store.get('b/memfile.header'), missingBucket)
      await assert.rejects(store.put('b/memfile.header', randomBytes(4)), missingBucket)
      await assert.rejects(store.list('b/'), { code: 'ERR_BUCKET_NOT_FOUND', message: /the bucket does not exist/ })
      assert.equal(await store.stat('b/memfile.header'), null, 'HEAD cannot tell a missing bucket from a missing object')
      assert.equal(await (store as S3Store).bucketExists(), false, 'but bucketExists can')
      const present = (await openStore(`s3://${await s3.createBucket('present')}`, { s3: s3.storeOptions })) as S3Store
      try {
        assert.equal(await present.bucketExists(), true)
      } finally {
        await present.close()
      }
    } finally {
      await store.close()
    }
  })

  test('refused credentials: a non-retryable permission error (403), for reads and writes', async () => {
    const strict = await startS3Server({ checkCredentials: true })
    const store = await openStore('s3://any-bucket/p', { s3: strict.storeOptions })
    try {
      const denied = (e: unknown) => {
        const err = e as { code?: string; retryable?: boolean; status?: number; message: string }
        assert.equal(err.code, 'ERR_STORAGE', err.message)
        assert.equal(err.retryable, false)
        assert.equal(err.status, 403)
        assert.match(err.message, /s3:\/\/any-bucket\/p\/x: permission denied: HTTP 403/)
        return true
      }
      await assert.rejects(store.get('x'), denied)
      await assert.rejects(store.put('x', randomBytes(4)), denied)
      await assert.rejects(store.getRange('x', 0, 1), denied)
    } finally {
      await store.close()
      await strict.stop()
    }
  })

  test('s3:// URLs are parsed strictly', async () => {
    for (const bad of ['s3://', 's3://Upper/x', 's3://ab', 's3://bucket:9000/x', 's3://u:p@bucket/x', 's3://bucket/x?region=y', 's3://under_score']) {
      await assert.rejects(openStore(bad), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_ARGUMENT' && /s3:\/\/bucket\[\/prefix\]/.test(e.message), bad)
    }
  })
})
