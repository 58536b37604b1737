/**
 * Fault injection under the GCS store: a proxy in front of fake-gcs-server answers 500, drops the
 * connection or stalls on chosen requests; another server is killed mid-upload. The store must surface
 * a clear, retryable StorageError (never hang), retry what its policy retries, and abort must still
 * leave no part or temporary object behind.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import type { ObjectStore } from '../../src/storage/store.ts'
import { openStore } from '../../src/storage/url.ts'
import { waitFor } from '../../bench/lib/procs.ts'
import { type FakeGcs, startFakeGcs } from '../../bench/lib/fake-gcs.ts'
import { makeParts, sha, uploadShuffled } from './backend-suite.ts'
import { FAST_RETRY, type FaultTarget, killedServer, NO_RETRY, partFaultThenAbort, stalledServer, storageError, transientFaultsRetried } from './fault-cases.ts'
import { type FaultProxy, isUploadOf, startFaultProxy, within } from './fault-proxy.ts'

let gcs: FakeGcs
let proxy: FaultProxy
let buckets = 0
before(async () => {
  gcs = await startFakeGcs()
  proxy = await startFaultProxy(gcs.endpoint)
})
after(async () => {
  await proxy?.close()
  await gcs?.stop()
})

/** A store on a fresh bucket, reached through the fault proxy (plan reset to pass-through). */
async function proxied(retry = NO_RETRY, timeoutMs = 5000) {
  const bucket = await gcs.createBucket(`faults-${++buckets}`)
  proxy.plan = () => 'pass'
  const store: ObjectStore = await openStore(`gs://${bucket}`, { gcsEndpoint: proxy.endpoint, retry, timeoutMs })
  return { store, bucket, raw: () => gcs.objects(bucket) }
}

const retryableStorageError = (re: RegExp) => storageError(true, re)
/** The shared fault cases' view of this backend: a part is an upload of the object `…/0000n`. */
const target: FaultTarget = {
  get proxy() {
    return proxy
  },
  proxied,
  isPart: (req, n) => isUploadOf(req, `/${String(n).padStart(5, '0')}`),
}

describe('gcs faults: errors surface clearly and abort still cleans up', () => {
  for (const fault of ['fail500', 'drop'] as const) {
    test(`${fault} on the 2nd part upload → retryable StorageError; abort leaves nothing`, async () => {
      const expected = fault === 'fail500' ? /00002: HTTP 500/ : /00002: .*(ECONNRESET|socket hang up)/i
      await partFaultThenAbort(target, fault, expected)
    })
  }

  test('transient faults are retried by the client; parts carry Content-Length', async () => {
    // The compose that assembles the parts fails once too.
    await transientFaultsRetried(target, 40, (req) => req.url?.includes('/compose') === true, (r) => r.url.includes('/upload/'))
  })

  test('a failed compose leaves the upload open; abort removes parts and intermediates', async () => {
    const { store, raw } = await proxied()
    const up = store.startUpload('tree')
    await uploadShuffled(up, makeParts(70, 512))
    proxy.plan = (req) => (req.url?.includes('/o/tree/compose') ? 'fail500' : 'pass')
    await assert.rejects(up.complete(), retryableStorageError(/compose.*HTTP 500/))
    assert.ok((await raw()).some((n) => /\/c0-00000$/.test(n)), 'intermediates were written')
    await up.abort()
    assert.deepEqual(await raw(), [])
    await assert.rejects(up.complete(), { code: 'ERR_UPLOAD_STATE' })
  })

  test('complete names a part that vanished from storage', async () => {
    const { store, bucket, raw } = await proxied()
    const up = store.startUpload('gone')
    for (let n = 1; n <= 3; n++) await up.uploadPart(n, randomBytes(100))
    await gcs.deleteObject(bucket, (await raw()).find((n) => n.endsWith('/00002'))!)
    await assert.rejects(up.complete(), /part 2: expected 100 bytes, found no object/)
    await up.abort()
    assert.deepEqual(await raw(), [])
  })

  test('a stalled server: timeout → retryable error; an aborted signal rejects at once', async () => {
    await stalledServer(target)
  })
})

describe('gcs faults: answers stalled mid-body', () => {
  test('regression: a GCS GET body that stalls after the headers hung forever; now a retryable timeout', async () => {
    const { store } = await proxied(NO_RETRY, 300)
    const data = randomBytes(256 * 1024)
    await store.put('obj', data)
    proxy.plan = (req) => (req.method === 'GET' ? 'stallBody' : 'pass')
    const timeout = retryableStorageError(/gcs read gs:\/\/.*\/obj: timeout: no body bytes for 300 ms/)
    await within(60_000, assert.rejects(store.getRange('obj', 1000, 200_000), timeout))
    await within(60_000, assert.rejects(store.get('obj'), timeout))
    proxy.plan = () => 'pass'
    assert.equal(sha(await store.getRange('obj', 1000, 200_000)), sha(data.subarray(1000, 201_000)))
  })

  test('an abort while the body stalls rejects at once; an already aborted signal sends nothing', async () => {
    // The idle timeout is far above any bound here: only the abort can end these reads.
    const { store } = await proxied(NO_RETRY, 120_000)
    await store.put('obj', randomBytes(256 * 1024))
    proxy.plan = (req) => (req.method === 'GET' ? 'stallBody' : 'pass')
    const seen = proxy.requests.length
    const ac = new AbortController()
    const p = store.getRange('obj', 0, 200_000, ac.signal)
    await waitFor('the GET to reach the proxy', async () => proxy.requests.slice(seen).some((r) => r.method === 'GET'), 5000)
    ac.abort()
    await within(60_000, assert.rejects(p, { name: 'AbortError' }))
    const before = proxy.requests.length
    await assert.rejects(store.getRange('obj', 0, 10, ac.signal), { name: 'AbortError' })
    await assert.rejects(store.get('obj', { signal: ac.signal }), { name: 'AbortError' })
    assert.equal(proxy.requests.length, before, 'no request for an already aborted read')
  })
})

describe('gcs faults: aborted reads', () => {
  test('regression: aborting a GCS read before its response arrived crashed the process (ERR_STREAM_UNABLE_TO_PIPE)', async () => {
    const { store } = await proxied()
    const data = randomBytes(64 * 1024)
    await store.put('obj', data)
    for (let i = 0; i < 5; i++) {
      const seen = proxy.requests.length
      const ac = new AbortController()
      const p = store.getRange('obj', 0, 1000, ac.signal)
      ac.abort()
      await assert.rejects(p, { name: 'AbortError' })
      // The aborted request still reaches the server and its answer comes back; the SDK used to pipe
      // it into the destroyed stream and throw out of its event handler (an uncaught exception that
      // fails this test). A later read on the same store must succeed and return the right bytes.
      await waitFor('the aborted GET to reach the proxy', async () => proxy.requests.slice(seen).some((r) => r.method === 'GET'), 5000)
      assert.equal(sha(await store.getRange('obj', 1000, 20_000)), sha(data.subarray(1000, 21_000)))
    }
  })
})

describe('gcs faults: the server dies mid-upload', () => {
  test('killed fake-gcs-server → clear retryable errors, nothing hangs', async () => {
    const victim = await startFakeGcs('victim')
    try {
      const store = await openStore(victim.url, { gcsEndpoint: victim.endpoint, retry: FAST_RETRY, timeoutMs: 2000 })
      await killedServer(store, () => victim.kill(), /ECONNREFUSED/)
    } finally {
      await victim.kill()
    }
  })
})

test('regression: a create-only put retried after its first attempt landed (answer lost) failed ERR_OBJECT_EXISTS; the object there is its own, so it succeeds — another object under the name still refuses', async () => {
  const { store } = await proxied(FAST_RETRY)
  const data = randomBytes(1000)
  let first = true
  proxy.plan = (req) => {
    if (req.method === 'POST' && first) {
      first = false
      return 'landedDrop'
    }
    return 'pass'
  }
  await store.put('landed', data, { metadata: { k: 'v' } })
  assert.equal(proxy.requests.filter((r) => r.fault === 'landedDrop').length, 1, 'the first attempt landed and its answer was lost')
  assert.ok(Buffer.from(await store.get('landed')).equals(data))
  await assert.rejects(store.put('landed', randomBytes(1000)), { code: 'ERR_OBJECT_EXISTS' })
  await assert.rejects(store.put('landed', data, { metadata: { k: 'other' } }), { code: 'ERR_OBJECT_EXISTS' })
})
