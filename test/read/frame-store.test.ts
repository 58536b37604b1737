/** The node's frame store: index, verified reads for peers, LRU by build, restart; the tracked shared cache. */
import assert from 'node:assert/strict'
import { mkdir, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { test } from 'node:test'
import type { BuildId } from '../../src/format/types.ts'
import { createRegistry, type Registry } from '../../src/obs/metrics.ts'
import { FrameFetcher } from '../../src/read/fetcher.ts'
import type { FrameRef } from '../../src/read/source.ts'
import { FrameStore } from '../../src/read/sources/frame-store.ts'
import type { StoreChange } from '../../src/read/sources/frame-index.ts'
import { TrackedSharedCache } from '../../src/read/sources/shared-cache.ts'
import { flipByte, frameData, KiB, MemorySource, newId, refOf, vmData, withTmp } from './helpers.ts'

const signal = new AbortController().signal
const FRAME = 64 * KiB

interface Build {
  id: BuildId
  refs: FrameRef[]
  stored: Buffer
}

async function build(frames = 4, seed = 1): Promise<Build> {
  const id = newId()
  const f = await frameData('zstd', vmData(frames * FRAME, seed), FRAME)
  return { id, refs: f.table.frames.map((_, i) => refOf(id, 'memfile', f.table, i)), stored: f.stored }
}

const bytesOf = (b: Build, ref: FrameRef) => b.stored.subarray(ref.startC, ref.startC + ref.sizeC)

async function fill(store: FrameStore | TrackedSharedCache, b: Build, frames = b.refs): Promise<void> {
  for (const ref of frames) assert.notEqual(await store.store(ref, bytesOf(b, ref)), 'locked')
}

async function metric(reg: Registry, name: string): Promise<number> {
  return (await reg.getSingleMetric(name)!.get()).values.reduce((s, v) => s + v.value, 0)
}

test('index.framesOf lists the frames of one file a build has here, in compressed order; a frame gone leaves the list, after a restart too', async () => {
  await withTmp(async (dir) => {
    const store = await FrameStore.open({ dir, maxBytes: 1 << 30 })
    const b = await build(4, 3)
    await fill(store, b, [b.refs[3], b.refs[0], b.refs[2]])
    assert.deepEqual(store.index.framesOf(b.id, 'memfile'), [b.refs[0], b.refs[2], b.refs[3]])
    assert.deepEqual(store.index.framesOf(b.id, 'rootfs'), [])
    assert.deepEqual(store.index.framesOf(newId(), 'memfile'), [])
    await rm(store.entryPath(b.refs[2]))
    assert.equal(await store.readVerified(b.refs[2]), null)
    assert.deepEqual(store.index.framesOf(b.id, 'memfile'), [b.refs[0], b.refs[3]])
    await store.idle()
    const again = await FrameStore.open({ dir, maxBytes: 1 << 30 })
    assert.deepEqual(again.index.framesOf(b.id, 'memfile'), [b.refs[0], b.refs[3]])
  })
})

test('owned: stored frames are indexed, found by codec + range, read back byte-exactly and verified', async () => {
  await withTmp(async (dir) => {
    const store = await FrameStore.open({ dir, maxBytes: 1 << 30 })
    const b = await build()
    const changes: StoreChange[] = []
    store.index.subscribe((c) => changes.push(c))
    await fill(store, b)
    assert.deepEqual(changes, [{ buildId: b.id, present: true }], 'one event per build, not per frame')
    assert.equal(store.index.bytes, b.stored.byteLength)
    const r = b.refs[2]
    assert.deepEqual(store.index.lookup(b.id, 'memfile', 'zstd', r.startC, r.sizeC), r)
    assert.equal(store.index.lookup(b.id, 'memfile', 'lz4', r.startC, r.sizeC), undefined, 'another codec is another frame')
    assert.equal(store.index.lookup(b.id, 'rootfs', 'zstd', r.startC, r.sizeC), undefined)
    assert.ok(store.index.has(r))
    assert.ok(!store.index.has({ ...r, sizeU: r.sizeU - 1 }), 'same range, other geometry')
    assert.ok(Buffer.from((await store.readVerified(r))!).equals(bytesOf(b, r)))
    assert.ok(Buffer.from((await store.fetch(r, signal))!).equals(bytesOf(b, r)))
    assert.ok(await store.present(b.refs))
    // The name carries the whole reference (codec, startC, sizeC, startU, sizeU).
    assert.match(store.entryPath(r), new RegExp(`${b.id}/memfile/zstd-${r.startC.toString(16).padStart(16, '0')}-${r.sizeC.toString(16)}-${r.startU.toString(16)}-${r.sizeU.toString(16)}\\.frm$`))
  })
})

test('owned: a corrupt, short or vanished entry is never returned for a peer, and leaves the index', async () => {
  await withTmp(async (dir) => {
    const registry = createRegistry()
    const store = await FrameStore.open({ dir, maxBytes: 1 << 30, registry })
    const b = await build()
    await fill(store, b)
    const [r0, r1, r2, r3] = b.refs
    await writeFile(store.entryPath(r0), flipByte(await readFile(store.entryPath(r0))))
    await truncate(store.entryPath(r1), r1.sizeC - 1)
    await writeFile(store.entryPath(r2), Buffer.concat([bytesOf(b, r2), Buffer.from([0])])) // overlong
    assert.equal(await store.readVerified(r0), null)
    assert.equal(await store.readVerified(r1), null)
    assert.equal(await store.present([r3, r2]), false, 'a size mismatch is found without reading')
    assert.equal(await metric(registry, 'snapswarm_frame_store_corrupt_total'), 3)
    for (const r of [r0, r1, r2]) {
      assert.ok(!store.index.has(r))
      await assert.rejects(stat(store.entryPath(r)), { code: 'ENOENT' })
    }
    assert.equal(store.index.bytes, r3.sizeC)
    // Deleted behind the store's back: "not servable", forgotten, and the build goes with its last frame.
    const changes: StoreChange[] = []
    store.index.subscribe((c) => changes.push(c))
    await writeFile(store.entryPath(r3), '') // replaced by an empty file
    assert.equal(await store.readVerified(r3), null)
    assert.equal(store.index.bytes, 0)
    assert.deepEqual(changes, [{ buildId: b.id, present: false }])
  })
})

test('owned: over the bound whole builds go, least recently used first, never a pinned one', async () => {
  await withTmp(async (dir) => {
    const registry = createRegistry()
    const [a, b, c] = [await build(4, 1), await build(4, 2), await build(4, 3)]
    const bound = a.stored.byteLength + b.stored.byteLength + c.stored.byteLength - 1
    const store = await FrameStore.open({ dir, maxBytes: bound, registry })
    await fill(store, a)
    await fill(store, b)
    await store.fetch(a.refs[0], signal) // a read: b is now the least recently used
    const unpinB = store.index.pin(b.id) // ...but in use (being served)
    await fill(store, c)
    await store.idle()
    // Over the bound: b is pinned, so a (the least recently used of the others) goes.
    assert.deepEqual(store.index.builds(), [c.id, b.id])
    await assert.rejects(stat(join(dir, a.id)), { code: 'ENOENT' })
    assert.equal(await metric(registry, 'snapswarm_frame_store_evictions_total'), 1)
    unpinB()
    await store.idle()
    assert.ok(store.index.bytes <= bound)
    assert.equal(await metric(registry, 'snapswarm_frame_store_bytes'), store.index.bytes)
  })
})

test('owned: a restart rebuilds the index from the names, oldest builds first; crash leftovers are removed', async () => {
  await withTmp(async (dir) => {
    const [a, b] = [await build(3, 4), await build(3, 5)]
    const first = await FrameStore.open({ dir, maxBytes: 1 << 30 })
    await fill(first, a)
    await fill(first, b)
    // a's directory is older; b's the newest.
    await utimes(join(dir, a.id, 'memfile'), new Date(1000), new Date(1000))
    const kindDir = dirname(first.entryPath(b.refs[0]))
    await writeFile(join(kindDir, 'x.frm.tmp.deadbeef'), 'partial')
    await writeFile(`${first.entryPath(b.refs[0])}.lock`, 'token')
    await mkdir(join(dir, 'not-a-build'), { recursive: true })

    const again = await FrameStore.open({ dir, maxBytes: 1 << 30 })
    assert.deepEqual(again.index.builds(), [b.id, a.id])
    assert.equal(again.index.bytes, a.stored.byteLength + b.stored.byteLength)
    for (const r of [...a.refs, ...b.refs]) assert.ok(again.index.has(r))
    assert.equal((await readdir(kindDir)).length, b.refs.length, 'temp file and lock removed')
    assert.ok(Buffer.from((await again.readVerified(b.refs[1]))!).equals(bytesOf(b, b.refs[1])))
  })
})

test('owned: frames of a failed build are dropped and never stored again; `accept` filters offers', async () => {
  await withTmp(async (dir) => {
    const [a, own] = [await build(2, 6), await build(2, 7)]
    const store = await FrameStore.open({ dir, maxBytes: 1 << 30, accept: (id) => id !== own.id })
    await fill(store, a)
    await store.index.forbid(a.id)
    assert.ok(store.index.isForbidden(a.id))
    assert.deepEqual(store.index.builds(), [])
    await assert.rejects(stat(join(dir, a.id)), { code: 'ENOENT' })
    store.offer(a.refs[0], bytesOf(a, a.refs[0]))
    store.offer(own.refs[0], bytesOf(own, own.refs[0]))
    await store.idle()
    assert.deepEqual(store.index.builds(), [])
    assert.deepEqual(await readdir(dir), [])
  })
})

test('shared: the shared cache\'s names; tracks what it read or wrote; over the bound forgets, never deletes', async () => {
  await withTmp(async (dir) => {
    const [a, b] = [await build(2, 8), await build(2, 9)]
    const store = new TrackedSharedCache({ dir, maxBytes: a.stored.byteLength + 1 })
    assert.equal(store.name, 'shared')
    assert.match(store.entryPath(a.refs[0]), /\/memfile\/0000000000000000-[0-9a-f]+\.frm$/)
    await fill(store, a)
    assert.deepEqual(store.index.builds(), [a.id])
    // Written by another node: learnt when this node reads it.
    const other = new TrackedSharedCache({ dir, maxBytes: 1 << 30 })
    await fill(other, b)
    assert.ok(!store.index.has(b.refs[0]))
    await store.fetch(b.refs[0], signal)
    await store.idle()
    assert.deepEqual(store.index.builds(), [b.id], 'a forgotten (over the bound)')
    for (const r of a.refs) await stat(store.entryPath(r)) // still on disk for every other node
  })
})

test('owned: junk in the directory never stops a start; a store over its bound after a restart is evicted at once', async () => {
  await withTmp(async (dir) => {
    const builds = [await build(2, 11), await build(2, 12), await build(2, 13)]
    const first = await FrameStore.open({ dir, maxBytes: 1 << 30 })
    for (const b of builds) await fill(first, b)
    await first.idle()
    const junkFileAsKind = newId()
    await mkdir(join(dir, junkFileAsKind), { recursive: true })
    await writeFile(join(dir, junkFileAsKind, 'memfile'), 'a file where a directory belongs')
    const kindDir = dirname(first.entryPath(builds[0].refs[0]))
    await mkdir(join(kindDir, 'a-directory-where-an-entry-belongs', 'deeper'), { recursive: true })

    // Room for one build only: the restart evicts down to it, least recently written first.
    const limit = Math.max(...builds.map((b) => b.stored.byteLength))
    const again = await FrameStore.open({ dir, maxBytes: limit })
    await again.idle()
    assert.ok(again.index.bytes <= limit, `${again.index.bytes} bytes kept, bound ${limit}`)
    assert.equal(again.index.builds().length, 1)
    assert.ok(!(await readdir(kindDir).catch(() => [] as string[])).includes('a-directory-where-an-entry-belongs'), 'junk in an entry directory is removed')
    const kept = builds.find((b) => b.id === again.index.builds()[0])!
    for (const r of kept.refs) assert.ok(Buffer.from((await again.readVerified(r))!).equals(bytesOf(kept, r)))
  })
})

test('owned: raw chunks are not kept (no checksum to re-verify them by before serving)', async () => {
  await withTmp(async (dir) => {
    const store = await FrameStore.open({ dir, maxBytes: 1 << 30 })
    const id = newId()
    const raw = vmData(FRAME, 9)
    store.offer({ buildId: id, kind: 'rootfs', codec: 'none', startU: 0, sizeU: FRAME, startC: 0, sizeC: FRAME }, raw)
    await store.idle()
    assert.deepEqual(store.index.builds(), [])
    assert.deepEqual(await readdir(dir), [])
  })
})

/** Flip 16 bytes in the middle of r0's entry, cut r1's to half, delete r2's; r3's is left whole. */
async function damageEntries(store: FrameStore, [r0, r1, r2]: FrameRef[]): Promise<void> {
  const bytes = await readFile(store.entryPath(r0))
  for (let i = (bytes.length >> 1) - 8; i < (bytes.length >> 1) + 8; i++) bytes[i] ^= 0x5a
  await writeFile(store.entryPath(r0), bytes)
  await truncate(store.entryPath(r1), r1.sizeC >> 1)
  await rm(store.entryPath(r2))
}

test('a flipped, truncated or deleted frame-store entry is never served to a local reader or a peer after a restart; a local read repairs it (item 1, frame store)', async () => {
  for (const reader of ['peer', 'local'] as const) {
    await withTmp(async (dir) => {
      // A node read the build (every frame verified, then written behind the read), and stopped.
      const f = await frameData('zstd', vmData(4 * FRAME, 21), FRAME)
      const id = newId()
      const refs = f.table.frames.map((_, i) => refOf(id, 'memfile', f.table, i))
      const storage = new MemorySource()
      storage.put(id, 'memfile', f.stored)
      const first = await FrameStore.open({ dir, maxBytes: 1 << 30 })
      const fetcher = new FrameFetcher({ sources: [first, storage] })
      for (const r of refs) await fetcher.fetch(r, signal)
      await first.idle()
      await damageEntries(first, refs)
      // Restarted: the index comes back from the names, the damaged files with it (but the deleted one).
      const registry = createRegistry()
      const store = await FrameStore.open({ dir, maxBytes: 1 << 30, registry })
      const stored = (r: FrameRef) => f.stored.subarray(r.startC, r.startC + r.sizeC)
      const plain = (r: FrameRef) => f.plain.subarray(r.startU, r.startU + r.sizeU)
      if (reader === 'peer') {
        // What the peer server sends: each frame read whole and checked just before it leaves.
        assert.equal(store.index.lookup(id, 'memfile', 'zstd', refs[2].startC, refs[2].sizeC), undefined, 'the deleted entry is not offered')
        assert.equal(await store.readVerified(refs[0]), null, 'the flipped entry is not sent')
        assert.equal(await store.present([refs[1]]), false, 'the cut entry is not offered')
        assert.equal(await store.readVerified(refs[1]), null)
        assert.ok(Buffer.from((await store.readVerified(refs[3]))!).equals(stored(refs[3])))
        assert.equal(await metric(registry, 'snapswarm_frame_store_corrupt_total'), 2)
        for (const r of refs.slice(0, 3)) await assert.rejects(stat(store.entryPath(r)), { code: 'ENOENT' })
      } else {
        // A local read goes through the fetcher, which verifies the entry, removes a bad one and refetches.
        const local = new FrameFetcher({ sources: [store, storage] })
        const calls = storage.calls
        for (const r of refs) assert.ok(Buffer.from(await local.fetch(r, signal)).equals(plain(r)))
        assert.equal(storage.calls, calls + 3, 'the three damaged frames came from storage, the whole one from the store')
        await store.idle()
        // Repaired: the store holds verified copies again, which a peer may get.
        for (const r of refs) assert.ok(Buffer.from((await store.readVerified(r))!).equals(stored(r)))
      }
    })
  }
})

test('owned: frames carry the content key they were read under; another content of the build replaces them, also after a restart', async () => {
  await withTmp(async (dir) => {
    const store = await FrameStore.open({ dir, maxBytes: 1 << 30 })
    const b = await build(2, 31)
    const [ka, kb] = ['a'.repeat(32), 'b'.repeat(32)]
    const under = (r: FrameRef, content: string): FrameRef => ({ ...r, content })
    for (const r of b.refs) await store.store(under(r, ka), bytesOf(b, r))
    assert.match(store.entryPath(under(b.refs[0], ka)), new RegExp(`-${ka}\\.frm$`))
    assert.ok(store.index.has(under(b.refs[0], ka)))
    assert.ok(!store.index.has(under(b.refs[0], kb)), 'another promised content is another frame')
    assert.equal(await store.fetch(under(b.refs[0], kb), signal), null)
    // A frame of the other content arrives: the build's frames of the first one go, files included.
    await store.store(under(b.refs[1], kb), bytesOf(b, b.refs[1]))
    await store.idle()
    assert.ok(!store.index.has(under(b.refs[0], ka)))
    assert.equal(store.index.bytes, b.refs[1].sizeC)
    assert.deepEqual(await readdir(dirname(store.entryPath(b.refs[0]))), [basename(store.entryPath(under(b.refs[1], kb)))])
    const again = await FrameStore.open({ dir, maxBytes: 1 << 30 })
    assert.ok(again.index.has(under(b.refs[1], kb)), 'the content key comes back from the name')
    assert.deepEqual(again.index.lookup(b.id, 'memfile', 'zstd', b.refs[1].startC, b.refs[1].sizeC), under(b.refs[1], kb))
  })
})

test('owned: one write per entry however often it is offered at once; a held entry is not written again; a build directory deleted under the store is made again', async () => {
  await withTmp(async (dir) => {
    const store = await FrameStore.open({ dir, maxBytes: 1 << 30 })
    const b = await build(2, 7)
    const ref = b.refs[0]
    const results = await Promise.all(Array.from({ length: 5 }, () => store.store(ref, bytesOf(b, ref))))
    assert.deepEqual(results.sort(), ['exists', 'exists', 'exists', 'exists', 'written'])
    assert.equal(await store.store(ref, bytesOf(b, ref)), 'exists')
    const kindDir = dirname(store.entryPath(ref))
    assert.deepEqual(await readdir(kindDir), [basename(store.entryPath(ref))], 'one entry, no temp file left')
    assert.deepEqual(await readFile(store.entryPath(ref)), Buffer.from(bytesOf(b, ref)))
    // The directory vanishes (an operator, a disk cleaner): the next write makes it again.
    await rm(join(dir, b.id), { recursive: true })
    assert.equal(await store.store(b.refs[1], bytesOf(b, b.refs[1])), 'written')
    assert.deepEqual(await store.readVerified(b.refs[1]), Buffer.from(bytesOf(b, b.refs[1])))
  })
})
