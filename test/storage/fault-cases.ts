/**
 * The fault cases the GCS and S3 stores share (gcs-faults / s3-faults): a part upload that fails or
 * drops, transient faults retried, a stalled server, a killed server. Each backend's test names
 * its own requests (which request is part n, which one completes an upload) and its error messages.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { ObjectStore } from '../../src/storage/store.ts'
import { waitFor } from '../../bench/lib/procs.ts'
import { makeParts, sha, uploadShuffled } from './backend-suite.ts'
import { type Fault, type FaultProxy, within } from './fault-proxy.ts'

export const NO_RETRY = { maxRetries: 0, maxDelayMs: 10, totalTimeoutMs: 5000 }
export const FAST_RETRY = { maxRetries: 2, maxDelayMs: 20, totalTimeoutMs: 5000 }

type StoreErr = Error & { code?: string; retryable?: boolean; status?: number }

/** An assert.rejects check: a StorageError, retryable or not, whose message matches `re`. */
export const storageError = (retryable: boolean, re: RegExp) => (e: unknown) => {
  const err = e as StoreErr
  assert.equal(err.code, 'ERR_STORAGE', String(err))
  assert.equal(err.retryable, retryable, err.message)
  assert.match(err.message, re)
  return true
}

/** A store on a fresh bucket behind the fault proxy, and what the server holds in that bucket. */
export interface Proxied {
  readonly store: ObjectStore
  raw(): Promise<string[]>
}

export interface FaultTarget {
  readonly proxy: FaultProxy
  proxied(retry?: typeof NO_RETRY, timeoutMs?: number): Promise<Proxied>
  /** The request that uploads part `n` of a multipart upload. */
  isPart(req: IncomingMessage, n: number): boolean
}

/** `fault` on the 2nd of three parts: `expected` error; the others land; abort leaves nothing. */
export async function partFaultThenAbort(t: FaultTarget, fault: 'fail500' | 'drop', expected: RegExp, onServer?: (raw: string[]) => void): Promise<void> {
  const { store, raw } = await t.proxied()
  const up = store.startUpload('b/memfile.zstd')
  const parts = makeParts(3, 8192)
  t.proxy.plan = (req) => (t.isPart(req, 2) ? fault : 'pass')
  await up.uploadPart(1, parts[0])
  await assert.rejects(up.uploadPart(2, parts[1]), storageError(true, expected))
  await up.uploadPart(3, parts[2])
  onServer?.(await raw())
  await up.abort()
  assert.deepEqual(await raw(), [])
}

/**
 * Parts 2 and 3 fail once (500, dropped), and so does the request `isFinal` names: each is sent again
 * and the object is whole; every part that went through carried a Content-Length.
 */
export async function transientFaultsRetried(
  t: FaultTarget,
  n: number,
  isFinal: (req: IncomingMessage) => boolean,
  isPartRequest: (r: { url: string; method: string }) => boolean,
): Promise<{ store: ObjectStore; seen: Map<string, number> }> {
  const { store } = await t.proxied(FAST_RETRY)
  const parts = makeParts(n, 2048)
  const seen = new Map<string, number>()
  const once = (key: string, fault: Fault): Fault => {
    seen.set(key, (seen.get(key) ?? 0) + 1)
    return seen.get(key) === 1 ? fault : 'pass'
  }
  t.proxy.plan = (req) => {
    if (t.isPart(req, 2)) return once('p2', 'fail500')
    if (t.isPart(req, 3)) return once('p3', 'drop')
    if (isFinal(req)) return once('final', 'fail500')
    return 'pass'
  }
  const first = t.proxy.requests.length
  const up = store.startUpload('retried', { metadata: { 'uncompressed-size': '1' } })
  await uploadShuffled(up, parts)
  await up.complete()
  assert.equal(sha(await store.get('retried')), sha(Buffer.concat(parts)))
  assert.deepEqual([seen.get('p2'), seen.get('p3')], [2, 2], 'each faulty request was sent again')
  const uploads = t.proxy.requests.slice(first).filter((r) => isPartRequest(r) && r.fault === 'pass')
  assert.equal(uploads.length, n)
  for (const r of uploads) {
    assert.ok(Number(r.contentLength) > 0, `Content-Length on ${r.url}`)
    assert.equal(r.transferEncoding, undefined)
  }
  return { store, seen }
}

/** A stalled server: a part upload times out (retryable); an aborted signal ends a stalled GET at once. */
export async function stalledServer(t: FaultTarget): Promise<void> {
  const { store, raw } = await t.proxied(NO_RETRY, 300)
  await store.put('obj', randomBytes(1000))
  t.proxy.plan = (req) => (req.method === 'GET' || t.isPart(req, 1) ? 'stall' : 'pass')
  const up = store.startUpload('stalled')
  await within(60_000, assert.rejects(up.uploadPart(1, randomBytes(100)), storageError(true, /timeout/i)))
  const seen = t.proxy.requests.length
  const ac = new AbortController()
  const p = store.getRange('obj', 0, 10, ac.signal)
  // Abort once the request has reached the (stalled) server. Only the abort (an AbortError) or the
  // 300 ms request timeout (a retryable StorageError) can end it, so the error's kind says which did.
  await waitFor('the GET to reach the proxy', async () => t.proxy.requests.slice(seen).some((r) => r.method === 'GET'), 5000)
  ac.abort()
  await within(60_000, assert.rejects(p, { name: 'AbortError' }))
  t.proxy.plan = () => 'pass'
  await up.abort()
  assert.deepEqual(await raw(), ['obj'])
}

/**
 * The server behind `store` is killed (`kill`) while parts are in flight: those end in clear retryable
 * errors, and every later call fails with `dead`; nothing hangs.
 */
export async function killedServer(store: ObjectStore, kill: () => Promise<void>, dead: RegExp): Promise<void> {
  const up = store.startUpload('b/memfile.zstd')
  await up.uploadPart(1, randomBytes(64 * 1024))
  const inflight = [2, 3, 4].map((n) => up.uploadPart(n, randomBytes(1024 * 1024)))
  // Let some requests reach the socket: a part may die mid-body (ECONNRESET) or never connect.
  await new Promise((resolve) => setTimeout(resolve, 5))
  await kill()
  const landed = [1]
  for (const [i, r] of (await within(60_000, Promise.allSettled(inflight))).entries()) {
    if (r.status === 'rejected') storageError(true, /ECONNRESET|ECONNREFUSED|socket hang up/i)(r.reason)
    else landed.push(i + 2)
  }
  const check = storageError(true, dead)
  await within(60_000, assert.rejects(up.uploadPart(5, randomBytes(10)), check))
  // A part lost before a later one landed leaves a gap: complete() refuses that itself, before any request.
  const gap = landed.some((n, i) => n !== i + 1)
  await within(60_000, assert.rejects(up.complete(), gap ? { code: 'ERR_UPLOAD_STATE', message: /part \d+ is missing/ } : check))
  await within(60_000, assert.rejects(up.abort(), check))
  await within(60_000, assert.rejects(store.get('anything'), check))
}
