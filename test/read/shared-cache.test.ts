/** The shared frame cache's lock / temp / hard-link protocol. */
import assert from 'node:assert/strict'
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { SharedCacheSource } from '../../src/read/sources/shared-cache.ts'
import type { FrameRef } from '../../src/read/source.ts'
import { MiB, newId, withTmp } from './helpers.ts'

const frameRef = (over: Partial<FrameRef> = {}): FrameRef => ({
  buildId: '0f8e1c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b',
  kind: 'memfile',
  codec: 'zstd',
  startU: 4 * MiB,
  sizeU: 2 * MiB,
  startC: 0x1234,
  sizeC: 0x2ab,
  ...over,
})
const signal = new AbortController().signal

test('entry names follow the shared cache layout ({buildId}/{file}/{codec}-...)', async () => {
  const shared = new SharedCacheSource({ dir: '/c' })
  assert.equal(shared.entryPath(frameRef()), `/c/0f8e1c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b/memfile/0000000000001234-2ab.frm`)
  const raw = frameRef({ kind: 'rootfs', codec: 'none', startU: 8 * MiB, sizeU: 4096, startC: 8 * MiB, sizeC: 4096 })
  assert.equal(shared.entryPath(raw), `/c/0f8e1c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b/rootfs.ext4/000000000002-4096.bin`)
  // A raw build's digested chunks follow its frame size, off the 4 MiB grid: named by their byte range.
  assert.equal(shared.entryPath({ ...raw, startU: 6 * MiB, startC: 6 * MiB, sizeU: 2 * MiB, sizeC: 2 * MiB }), `/c/0f8e1c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b/rootfs.ext4/0000000000600000-200000.raw`)
})

test('store then fetch round-trips; a missing entry is "not here"; a second store is "exists"', async () => {
  await withTmp(async (dir) => {
    const shared = new SharedCacheSource({ dir })
    const ref = frameRef({ sizeC: 5 })
    assert.equal(await shared.fetch(ref, signal), null)
    assert.equal(await shared.store(ref, Buffer.from('hello')), 'written')
    assert.equal(await shared.store(ref, Buffer.from('hello')), 'exists')
    assert.deepEqual(Buffer.from((await shared.fetch(ref, signal))!), Buffer.from('hello'))
    // Nothing but the final entry is left behind: no temp, no lock.
    assert.deepEqual(await readdir(dirname(shared.entryPath(ref))), ['0000000000001234-5.frm'])
  })
})

test('an overlong entry is returned one byte too long, so verification sees it as wrong-sized', async () => {
  await withTmp(async (dir) => {
    const shared = new SharedCacheSource({ dir })
    const ref = frameRef({ sizeC: 4 })
    await mkdir(dirname(shared.entryPath(ref)), { recursive: true })
    await writeFile(shared.entryPath(ref), 'toolong')
    assert.equal((await shared.fetch(ref, signal))!.byteLength, 5)
    await shared.remove(ref)
    assert.equal(await shared.fetch(ref, signal), null)
  })
})

test('a fresh lock held by another writer: skip; a stale lock (> 10 s): broken and written', async () => {
  await withTmp(async (dir) => {
    const shared = new SharedCacheSource({ dir })
    const ref = frameRef({ sizeC: 3 })
    const final = shared.entryPath(ref)
    await mkdir(dirname(final), { recursive: true })
    await writeFile(`${final}.lock`, 'other-writer')
    assert.equal(await shared.store(ref, Buffer.from('abc')), 'locked')
    assert.equal(await shared.fetch(ref, signal), null)
    assert.equal(await readFile(`${final}.lock`, 'utf8'), 'other-writer', 'a live lock is never removed')

    const old = (Date.now() - 11_000) / 1000
    await utimes(`${final}.lock`, old, old)
    assert.equal(await shared.store(ref, Buffer.from('abc')), 'written')
    assert.deepEqual(await readdir(dirname(final)), ['0000000000001234-3.frm'])
  })
})

test('concurrent writers: exactly one complete entry, every writer succeeds or skips, nothing left over', async () => {
  await withTmp(async (dir) => {
    // Two cache objects = two nodes on one NFS directory.
    const nodes = [new SharedCacheSource({ dir }), new SharedCacheSource({ dir })]
    const ref = frameRef({ sizeC: 64 * 1024 })
    const bytes = Buffer.alloc(64 * 1024, 7)
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => nodes[i % 2].store(ref, bytes)))
    assert.ok(results.includes('written'))
    assert.ok(results.every((r) => r === 'written' || r === 'exists' || r === 'locked'), String(results))
    assert.deepEqual(await readdir(dirname(nodes[0].entryPath(ref))), ['0000000000001234-10000.frm'])
    assert.deepEqual(await readFile(nodes[1].entryPath(ref)), bytes)
  })
})

test('link never replaces: writers that all break the lock (stale = 0) still publish exactly one whole file', async () => {
  await withTmp(async (dir) => {
    const nodes = [new SharedCacheSource({ dir, staleLockMs: 0 }), new SharedCacheSource({ dir, staleLockMs: 0 })]
    const ref = frameRef({ buildId: newId(), sizeC: 256 * 1024 })
    const contents = Array.from({ length: 16 }, (_, i) => Buffer.alloc(256 * 1024, i + 1))
    const results = await Promise.all(contents.map((c, i) => nodes[i % 2].store(ref, c)))
    assert.equal(results.filter((r) => r === 'written').length, 1, `one winner, found ${results}`)
    const final = await readFile(nodes[0].entryPath(ref))
    assert.ok(contents.some((c) => c.equals(final)), 'the entry is one writer\'s complete bytes')
    assert.deepEqual(await readdir(dirname(nodes[0].entryPath(ref))), ['0000000000001234-40000.frm'])
  })
})

test('offer is fire-and-forget and bounded; idle waits for the writes', async () => {
  await withTmp(async (dir) => {
    const shared = new SharedCacheSource({ dir, maxPendingWrites: 2 })
    for (let i = 0; i < 5; i++) shared.offer(frameRef({ startC: i * 16, sizeC: 1 }), Buffer.from([i]))
    await shared.idle()
    const files = await readdir(join(dir, frameRef().buildId, 'memfile'))
    assert.equal(files.length, 2, 'writes beyond the bound are dropped, not queued')
  })
})
