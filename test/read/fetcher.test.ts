/** Verification in one place and the fallback chain: peers → shared cache → storage. */
import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { test } from 'node:test'
import { sha256Of } from '../../src/format/raw-digests.ts'
import { createRegistry } from '../../src/obs/metrics.ts'
import { FrameFetcher } from '../../src/read/fetcher.ts'
import { ReadMetrics } from '../../src/read/metrics.ts'
import type { FrameRef, FrameSource } from '../../src/read/source.ts'
import { SharedCacheSource } from '../../src/read/sources/shared-cache.ts'
import { flipByte, frameData, KiB, MemorySource, newId, refOf, sleep, until, vmData, withTmp } from './helpers.ts'

const signal = new AbortController().signal

async function fixture(codec: 'zstd' | 'lz4' | 'none' = 'zstd') {
  const buildId = newId()
  const framed = await frameData(codec, vmData(256 * KiB, 3), 64 * KiB)
  const storage = new MemorySource('storage')
  storage.put(buildId, 'memfile', framed.stored, codec)
  // Raw chunks are named by their index in 4 MiB units, so a raw ref must start on that grid.
  return { buildId, framed, storage, ref: refOf(buildId, 'memfile', framed.table, codec === 'none' ? 0 : 1) }
}

async function metricValue(reg: ReturnType<typeof createRegistry>, name: string, source: string): Promise<number> {
  const m = (await reg.getSingleMetric(name)!.get()).values.find((v) => v.labels.source === source)
  return m?.value ?? 0
}

test('a verified frame from storage is returned decoded and written back to the shared cache', async () => {
  await withTmp(async (dir) => {
    const { framed, storage, ref } = await fixture()
    const shared = new SharedCacheSource({ dir })
    const fetcher = new FrameFetcher({ sources: [shared, storage] })
    const plain = await fetcher.fetch(ref, signal)
    assert.deepEqual(Buffer.from(plain), framed.plain.subarray(ref.startU, ref.startU + ref.sizeU))
    await shared.idle()
    assert.deepEqual(await readFile(shared.entryPath(ref)), framed.stored.subarray(ref.startC, ref.startC + ref.sizeC))
    // Now the shared cache serves it; storage is not asked again.
    await fetcher.fetch(ref, signal)
    assert.equal(storage.calls, 1)
  })
})

test('a corrupted shared-cache entry is detected, deleted, refetched from storage and rewritten good', async () => {
  await withTmp(async (dir) => {
    const reg = createRegistry()
    const { framed, storage, ref } = await fixture()
    const shared = new SharedCacheSource({ dir })
    const good = framed.stored.subarray(ref.startC, ref.startC + ref.sizeC)
    await mkdir(dirname(shared.entryPath(ref)), { recursive: true })
    await writeFile(shared.entryPath(ref), flipByte(good))
    const penalties: string[] = []
    const fetcher = new FrameFetcher({
      sources: [shared, storage],
      metrics: new ReadMetrics(reg),
      onPenalty: (s, _r, why) => penalties.push(`${s.name}:${why}`),
    })
    const plain = await fetcher.fetch(ref, signal)
    assert.deepEqual(Buffer.from(plain), framed.plain.subarray(ref.startU, ref.startU + ref.sizeU))
    assert.deepEqual(penalties, ['shared:corrupt'])
    assert.equal(await metricValue(reg, 'snapswarm_frame_verify_failures_total', 'shared'), 1)
    await shared.idle()
    assert.deepEqual(await readFile(shared.entryPath(ref)), good, 'the corrupt entry was replaced by verified bytes')
  })
})

test('a wrong-sized shared entry counts as corrupt too', async () => {
  await withTmp(async (dir) => {
    const { storage, framed, ref: bare } = await fixture('none')
    const ref = { ...bare, digest: sha256Of(framed.plain.subarray(bare.startU, bare.startU + bare.sizeU)) } // the shared cache keeps digested raw chunks only
    const shared = new SharedCacheSource({ dir })
    await mkdir(dirname(shared.entryPath(ref)), { recursive: true })
    await writeFile(shared.entryPath(ref), Buffer.alloc(ref.sizeC - 1))
    const fetcher = new FrameFetcher({ sources: [shared, storage] })
    assert.equal((await fetcher.fetch(ref, signal)).byteLength, ref.sizeU)
    assert.equal(storage.calls, 1)
    await shared.idle() // the good copy's background write-back ends before the directory is removed
    assert.equal((await shared.fetch(ref, signal))?.byteLength, ref.sizeC, 'the wrong-sized entry was replaced by the good one')
  })
})

test('a corrupted storage object: clear error, never returned, never written to the shared cache', async () => {
  await withTmp(async (dir) => {
    for (const codec of ['zstd', 'lz4', 'none'] as const) {
      const { storage, ref } = await fixture(codec)
      storage.tamper = codec === 'none' ? (b) => b.subarray(1) : flipByte
      const shared = new SharedCacheSource({ dir })
      const fetcher = new FrameFetcher({ sources: [shared, storage] })
      await assert.rejects(fetcher.fetch(ref, signal), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_FRAME_UNAVAILABLE')
        assert.match(err.message, /storage: corrupt/)
        return true
      })
      await shared.idle()
      assert.equal(await shared.fetch(ref, signal), null, `${codec}: nothing cached`)
    }
  })
})

test('a truncated object gives an error naming the sizes, not a hang', async () => {
  const { storage, ref } = await fixture()
  storage.tamper = (b) => b.subarray(0, b.byteLength - 10)
  const fetcher = new FrameFetcher({ sources: [storage] })
  await assert.rejects(fetcher.fetch(ref, signal), new RegExp(`expected ${ref.sizeC} stored bytes, found ${ref.sizeC - 10}`))
})

test('peers first; a bad or failing peer is penalised and the next source used', async () => {
  const { framed, storage, ref } = await fixture('lz4')
  const peer = new MemorySource('peer')
  peer.put(ref.buildId, 'memfile', framed.stored, 'lz4')
  const penalties: string[] = []
  const fetcher = new FrameFetcher({ sources: [peer, storage], onPenalty: (s, _r, why) => penalties.push(`${s.name}:${why}`) })
  await fetcher.fetch(ref, signal)
  assert.deepEqual([peer.calls, storage.calls], [1, 0])
  peer.tamper = flipByte
  await fetcher.fetch(ref, signal)
  peer.tamper = null
  peer.fail = new Error('connection reset')
  await fetcher.fetch(ref, signal)
  assert.deepEqual(penalties, ['peer:corrupt', 'peer:error'])
  assert.equal(storage.calls, 2)
  await new FrameFetcher({ sources: [storage] }).fetch(ref, signal)
  assert.equal(peer.calls, 3)
})

test('a stalled source that ignores its signal falls back after the source deadline', async () => {
  const { framed, storage, ref } = await fixture()
  const peer = new MemorySource('peer')
  peer.hang = true
  const fetcher = new FrameFetcher({ sources: [peer as FrameSource, storage], sourceTimeoutMs: 50 })
  const plain = await fetcher.fetch(ref, signal)
  assert.deepEqual(Buffer.from(plain), framed.plain.subarray(ref.startU, ref.startU + ref.sizeU))
})

test('the caller aborting stops the fetch with its reason', async () => {
  const { storage, ref } = await fixture()
  storage.delayMs = 5_000
  const ac = new AbortController()
  const p = new FrameFetcher({ sources: [storage] }).fetch(ref, ac.signal)
  ac.abort(new Error('gave up'))
  await assert.rejects(p, /gave up/)
})

/** An answer delay no fetch can sit out (the longest a timer takes): such a source answers only by being aborted. */
const NEVER = 2 ** 31 - 1

/** A source answering after `ms` (good bytes from `inner`, or `bytes()`), recording whether its signal fired. */
class TimedSource implements FrameSource {
  readonly name: string
  readonly retryAfterPenalty?: boolean
  calls = 0
  aborted = 0
  /** Answers handed back (an ignored signal still answers). */
  answered = 0
  answers: ((n: number) => { ms: number; tamper?: boolean; ignoreSignal?: boolean })
  private readonly inner: MemorySource

  constructor(name: string, data: MemorySource, answers: TimedSource['answers'], retryAfterPenalty?: boolean) {
    this.name = name
    this.inner = new MemorySource(name) // a copy of the objects: asking this source is not counted as asking `data`
    for (const [k, v] of data.objects) this.inner.objects.set(k, v)
    this.answers = answers
    if (retryAfterPenalty) this.retryAfterPenalty = true
  }

  async fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null> {
    const a = this.answers(this.calls++)
    signal.addEventListener('abort', () => this.aborted++, { once: true })
    await sleep(a.ms, a.ignoreSignal ? undefined : signal)
    const bytes = await this.inner.fetch(ref, new AbortController().signal)
    this.answered++
    return bytes && a.tamper ? flipByte(bytes) : bytes
  }
}

async function counts(reg: ReturnType<typeof createRegistry>, source: string) {
  return {
    started: await metricValue(reg, 'snapswarm_fetch_hedges_started_total', source),
    won: await metricValue(reg, 'snapswarm_fetch_hedges_won_total', source),
  }
}

test('hedge: a peer silent past hedgeAfterMs gets storage started beside it; storage wins, the peer is aborted', async () => {
  const reg = createRegistry()
  const { framed, storage, ref } = await fixture()
  // The peer never answers: a fetch that waited for it would only end at the source timeout, unhedged.
  const peer = new TimedSource('peer', storage, () => ({ ms: NEVER }))
  const penalties: string[] = []
  const fetcher = new FrameFetcher({ sources: [peer, storage], hedgeAfterMs: 30, sourceTimeoutMs: NEVER, metrics: new ReadMetrics(reg), onPenalty: (s, _r, why) => penalties.push(`${s.name}:${why}`) })
  const plain = await fetcher.fetch(ref, signal)
  assert.deepEqual(Buffer.from(plain), framed.plain.subarray(ref.startU, ref.startU + ref.sizeU))
  assert.equal(peer.aborted, 1, "the loser's signal fired")
  assert.deepEqual(penalties, [], 'a loser is not penalised')
  assert.deepEqual(await counts(reg, 'storage'), { started: 1, won: 1 })
  assert.equal(await metricValue(reg, 'snapswarm_read_hits_total', 'storage'), 1)
})

test('hedge: the peer answering first still wins; the hedge is aborted; no hedge when the peer is quick', async () => {
  const reg = createRegistry()
  const { storage, ref } = await fixture()
  const slowStorage = new TimedSource('storage', storage, () => ({ ms: NEVER }))
  const peer = new TimedSource('peer', storage, (n) => ({ ms: n === 0 ? 80 : 0 }))
  const fetcher = new FrameFetcher({ sources: [peer, slowStorage], hedgeAfterMs: 20, metrics: new ReadMetrics(reg) })
  await fetcher.fetch(ref, signal)
  assert.deepEqual([peer.calls, slowStorage.calls, slowStorage.aborted], [1, 1, 1])
  assert.deepEqual(await counts(reg, 'storage'), { started: 1, won: 0 })
  assert.equal(await metricValue(reg, 'snapswarm_read_hits_total', 'peer'), 1)
  await fetcher.fetch(ref, signal) // answers at once: no hedge
  assert.deepEqual([peer.calls, slowStorage.calls], [2, 1])
})

test('hedge: the first VERIFIED answer wins: a quick corrupt hedge does not end the fetch; a late loser is ignored', async () => {
  const reg = createRegistry()
  const { framed, storage, ref } = await fixture()
  const badStorage = new TimedSource('storage', storage, () => ({ ms: 0, tamper: true }))
  // The peer ignores its signal: its late answer must be dropped, not verified, counted or penalised.
  const peer = new TimedSource('peer', storage, (n) => ({ ms: n === 0 ? 120 : 300, ignoreSignal: true, tamper: n === 1 }))
  const penalties: string[] = []
  const fetcher = new FrameFetcher({ sources: [peer, badStorage], hedgeAfterMs: 20, metrics: new ReadMetrics(reg), onPenalty: (s, _r, why) => penalties.push(`${s.name}:${why}`) })
  const plain = await fetcher.fetch(ref, signal)
  assert.deepEqual(Buffer.from(plain), framed.plain.subarray(ref.startU, ref.startU + ref.sizeU))
  assert.deepEqual(penalties, ['storage:corrupt'])
  assert.equal(await metricValue(reg, 'snapswarm_read_hits_total', 'peer'), 1)

  // Now storage is good and quick, the (corrupt) peer slow: storage wins and the peer's late bad bytes are ignored.
  badStorage.answers = () => ({ ms: 0 })
  await fetcher.fetch(ref, signal)
  // Wait for the peer's late (corrupt) answer itself, then let its promise settle inside the fetcher.
  await until(() => peer.answered === 2, 'the late answer')
  await new Promise((r) => setImmediate(r))
  assert.deepEqual(penalties, ['storage:corrupt'], 'the late corrupt answer was never verified')
  assert.equal(await metricValue(reg, 'snapswarm_frame_verify_failures_total', 'peer'), 0)
})

test('hedge: a failing hedge moves on to the source after it while the slow peer runs', async () => {
  await withTmp(async (dir) => {
    const reg = createRegistry()
    const { framed, storage, ref } = await fixture()
    const shared = new SharedCacheSource({ dir }) // empty: "not here" at once
    // The peer never answers: only the hedges (shared, then storage) can end this fetch.
    const peer = new TimedSource('peer', storage, () => ({ ms: NEVER }))
    const fetcher = new FrameFetcher({ sources: [peer, shared, storage], hedgeAfterMs: 20, sourceTimeoutMs: NEVER, metrics: new ReadMetrics(reg) })
    const plain = await fetcher.fetch(ref, signal)
    assert.deepEqual(Buffer.from(plain), framed.plain.subarray(ref.startU, ref.startU + ref.sizeU))
    assert.deepEqual(await counts(reg, 'shared'), { started: 1, won: 0 })
    assert.equal(storage.calls, 1)
    assert.equal(peer.aborted, 1)
    await shared.idle()
  })
})

test('hedge: when every source fails the error lists them all; Infinity disables hedging', async () => {
  const { storage, ref } = await fixture()
  storage.fail = new Error('bucket down')
  const peer = new TimedSource('peer', new MemorySource('empty'), () => ({ ms: 60 }))
  await assert.rejects(new FrameFetcher({ sources: [peer, storage], hedgeAfterMs: 10 }).fetch(ref, signal), (err: Error) => {
    assert.match(err.message, /storage: bucket down/)
    assert.match(err.message, /peer: not here/)
    return true
  })
  storage.fail = null
  const slow = new TimedSource('peer', storage, () => ({ ms: 60 }))
  await new FrameFetcher({ sources: [slow, storage], hedgeAfterMs: Number.POSITIVE_INFINITY }).fetch(ref, signal)
  assert.equal(storage.calls, 1, 'only the first, failed round asked storage')
})

test('the caller aborting during a hedge aborts every attempt with its reason', async () => {
  const { storage, ref } = await fixture()
  const peer = new TimedSource('peer', storage, () => ({ ms: NEVER }))
  const slowStorage = new TimedSource('storage', storage, () => ({ ms: NEVER }))
  const ac = new AbortController()
  const p = new FrameFetcher({ sources: [peer, slowStorage], hedgeAfterMs: 10, sourceTimeoutMs: NEVER }).fetch(ref, ac.signal)
  await until(() => slowStorage.calls === 1, 'the hedge to start')
  ac.abort(new Error('reader gone'))
  await assert.rejects(p, /reader gone/)
  assert.deepEqual([peer.aborted, slowStorage.aborted], [1, 1])
})

test('retryAfterPenalty: a source that declares it is asked once more after a verification failure', async () => {
  const { framed, storage, ref } = await fixture()
  const penalties: string[] = []
  const onPenalty = (s: FrameSource, _r: unknown, why: string) => penalties.push(`${s.name}:${why}`)
  // First answer corrupt (a bad peer, now penalised), the retry good (another peer): storage never asked.
  const peer = new TimedSource('peer', storage, (n) => ({ ms: 0, tamper: n === 0 }), true)
  const reg = createRegistry()
  const fetcher = new FrameFetcher({ sources: [peer, storage], onPenalty, metrics: new ReadMetrics(reg) })
  const plain = await fetcher.fetch(ref, signal)
  assert.deepEqual(Buffer.from(plain), framed.plain.subarray(ref.startU, ref.startU + ref.sizeU))
  assert.deepEqual([peer.calls, storage.calls], [2, 0])
  assert.deepEqual(penalties, ['peer:corrupt'])
  assert.equal(await metricValue(reg, 'snapswarm_fetch_penalty_retries_total', 'peer'), 1)
  // Corrupt twice: once more only, then the next source.
  peer.answers = () => ({ ms: 0, tamper: true })
  await fetcher.fetch(ref, signal)
  assert.deepEqual([peer.calls, storage.calls], [4, 1])
  // A source without the flag is not asked again, and an error (not corruption) is not retried.
  const plainPeer = new TimedSource('peer', storage, () => ({ ms: 0, tamper: true }))
  await new FrameFetcher({ sources: [plainPeer, storage] }).fetch(ref, signal)
  assert.equal(plainPeer.calls, 1)
  const failing = new MemorySource('peer')
  Object.assign(failing, { retryAfterPenalty: true, fail: new Error('reset') })
  await new FrameFetcher({ sources: [failing, storage] }).fetch(ref, signal)
  assert.equal(failing.calls, 1)
})

test('regression: a rotten raw chunk without a digest in the shared cache is served as data (item 1)', async () => {
  await withTmp(async (dir) => {
    // A legacy raw build: its header gives no SHA-256 per chunk, so a copy in the shared directory
    // could only be checked for its size. One with the right size and rotten bytes sits there.
    const { storage, framed, ref } = await fixture('none')
    const good = framed.plain.subarray(ref.startU, ref.startU + ref.sizeU)
    const shared = new SharedCacheSource({ dir })
    await mkdir(dirname(shared.entryPath(ref)), { recursive: true })
    await writeFile(shared.entryPath(ref), flipByte(good))
    const fetcher = new FrameFetcher({ sources: [shared, storage] })
    assert.ok(Buffer.from(await fetcher.fetch(ref, signal)).equals(good), 'the bytes of the original, not the shared copy')
    assert.equal(storage.calls, 1)
    await shared.idle()
    assert.ok(Buffer.from(await readFile(shared.entryPath(ref))).equals(flipByte(good)), 'and none written over it either')
    // With the chunk's SHA-256 (a raw build that carries digests), the shared copy is checked, found
    // rotten, removed and replaced by the verified one; then read from there.
    const digested = { ...ref, digest: sha256Of(good) }
    assert.ok(Buffer.from(await fetcher.fetch(digested, signal)).equals(good))
    assert.equal(storage.calls, 2)
    await shared.idle()
    assert.ok(Buffer.from(await readFile(shared.entryPath(digested))).equals(good))
    assert.ok(Buffer.from(await fetcher.fetch(digested, signal)).equals(good))
    assert.equal(storage.calls, 2, 'read back from the shared cache')
  })
})

test('a digested raw chunk off the 4 MiB grid is kept and read back by the shared cache, with no source error', async () => {
  await withTmp(async (dir) => {
    const reg = createRegistry()
    const { storage, framed } = await fixture('none')
    const bare = refOf(newId(), 'memfile', framed.table, 1) // starts at 64 KiB
    storage.put(bare.buildId, 'memfile', framed.stored, 'none')
    const good = framed.plain.subarray(bare.startU, bare.startU + bare.sizeU)
    const ref = { ...bare, digest: sha256Of(good) }
    const shared = new SharedCacheSource({ dir })
    const fetcher = new FrameFetcher({ sources: [shared, storage], metrics: new ReadMetrics(reg) })
    assert.ok(Buffer.from(await fetcher.fetch(ref, signal)).equals(good))
    await shared.idle()
    assert.ok(Buffer.from(await fetcher.fetch(ref, signal)).equals(good))
    assert.equal(storage.calls, 1, 'the second read came from the shared cache')
    assert.equal(await metricValue(reg, 'snapswarm_frame_source_errors_total', 'shared'), 0)
  })
})
