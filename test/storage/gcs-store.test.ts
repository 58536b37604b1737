/**
 * The shared backend suite on GcsStore against fake-gcs-server (a real GCS JSON API server, not a
 * mock), plus what only GCS can get wrong: the gs:// prefix, the emulator endpoint configuration.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { openStore } from '../../src/storage/url.ts'
import { type FakeGcs, startFakeGcs } from '../../bench/lib/fake-gcs.ts'
import { backendSuite, sha } from './backend-suite.ts'

let gcs: FakeGcs
let buckets = 0
before(async () => {
  gcs = await startFakeGcs()
})
after(async () => {
  await gcs?.stop()
})

// Run under a prefix: every name goes through the prefix mapping, and raw() sees the real names.
backendSuite({
  name: 'gcs',
  async open() {
    const bucket = await gcs.createBucket(`suite-${++buckets}`)
    const store = await openStore(`gs://${bucket}/tenant/a`, { gcsEndpoint: gcs.endpoint })
    return { store, raw: () => gcs.objects(bucket) }
  },
})

describe('gcs: prefix and endpoint', () => {
  test('gs://bucket/prefix: prefix prepended to names, stripped from list, stores isolated', async () => {
    const bucket = await gcs.createBucket('prefixes')
    const a = await openStore(`gs://${bucket}/builds/`, { gcsEndpoint: gcs.endpoint })
    const b = await openStore(`gs://${bucket}/builds2`, { gcsEndpoint: gcs.endpoint })
    const root = await openStore(`gs://${bucket}`, { gcsEndpoint: gcs.endpoint })
    assert.equal(a.url, `gs://${bucket}/builds`)
    await a.put('0f8e/memfile', randomBytes(10))
    await b.put('0f8e/memfile', randomBytes(20))
    assert.deepEqual(await a.list(''), ['0f8e/memfile'])
    assert.equal((await a.stat('0f8e/memfile'))?.size, 10)
    assert.deepEqual(await root.list(''), ['builds/0f8e/memfile', 'builds2/0f8e/memfile'])
    assert.deepEqual(await gcs.objects(bucket), ['builds/0f8e/memfile', 'builds2/0f8e/memfile'])
    const up = a.startUpload('0f8e/rootfs.ext4')
    await up.uploadPart(1, randomBytes(5))
    assert.deepEqual(await root.list(''), ['builds/0f8e/memfile', 'builds2/0f8e/memfile'], 'parts unlisted')
    await up.abort()
  })

  test('STORAGE_EMULATOR_HOST works with and without a scheme', async () => {
    const saved = process.env.STORAGE_EMULATOR_HOST
    try {
      for (const host of [`127.0.0.1:${gcs.port}`, `${gcs.endpoint}/`, `${gcs.endpoint}/storage/v1`]) {
        process.env.STORAGE_EMULATOR_HOST = host
        const store = await openStore(`gs://${gcs.bucket}/env`)
        const data = randomBytes(100)
        await store.put('x', data, { metadata: { 'uncompressed-size': '7' } })
        assert.equal(sha(await store.get('x')), sha(data), host)
        assert.deepEqual((await store.stat('x'))?.metadata, { 'uncompressed-size': '7' })
        assert.deepEqual(await store.list(''), ['x'])
        await store.delete('x')
      }
    } finally {
      if (saved === undefined) delete process.env.STORAGE_EMULATOR_HOST
      else process.env.STORAGE_EMULATOR_HOST = saved
    }
  })
})
