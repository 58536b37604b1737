/** Serving and announcing builds from the frame store: real store on disk, no network. */
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { test } from 'node:test'
import type { BuildId } from '../../src/format/types.ts'
import { BuildStatusBoard } from '../../src/cluster/build-status.ts'
import { CachedAnnouncer, CachedFrameServer } from '../../src/cluster/cached-frames.ts'
import { LocalBuilds } from '../../src/origin/local-builds.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { createRegistry } from '../../src/obs/metrics.ts'
import type { BuildAnnouncement, FrameBatch, FramesAnswer } from '../../src/p2p/index.ts'
import { FrameStore } from '../../src/read/sources/frame-store.ts'
import type { FrameRef } from '../../src/read/source.ts'
import { flipByte, frameData, KiB, newId, refOf, vmData, withTmp } from '../read/helpers.ts'

const FRAME = 64 * KiB

async function setup(dir: string, maxBytes = 1 << 30) {
  const store = await FrameStore.open({ dir, maxBytes })
  const builds = new LocalBuilds(dir)
  const board = new BuildStatusBoard()
  const server = new CachedFrameServer({ store, builds, board, registry: createRegistry(), log: silentLogger })
  return { store, builds, board, server }
}

async function cachedBuild(store: FrameStore, frames = 4, seed = 1, keep = (_i: number) => true) {
  const id = newId()
  const f = await frameData('zstd', vmData(frames * FRAME, seed), FRAME)
  const refs = f.table.frames.map((_, i) => refOf(id, 'memfile', f.table, i))
  const bytes = (r: FrameRef) => f.stored.subarray(r.startC, r.startC + r.sizeC)
  for (const [i, r] of refs.entries()) if (keep(i)) await store.store(r, bytes(r))
  return { id, refs, bytes, size: f.stored.byteLength }
}

const ranges = (refs: FrameRef[]) => refs.map((r) => ({ startC: r.startC, sizeC: r.sizeC }))

function batchOf(a: FramesAnswer): FrameBatch {
  assert.equal(a.status, 'OK')
  return (a as { batch: FrameBatch }).batch
}

test('OK only when every frame is held with the codec and range asked; the bytes are the stored ones', async () => {
  await withTmp(async (dir) => {
    const { store, server } = await setup(dir)
    const b = await cachedBuild(store, 4, 1, (i) => i !== 2)
    const held = [b.refs[0], b.refs[1], b.refs[3]]
    const batch = batchOf(await server.getFrames(b.id, 'memfile', 'zstd', ranges(held)))
    for (const [i, r] of held.entries()) assert.ok(Buffer.from(await batch.frame(i, AbortSignal.timeout(1000))).equals(b.bytes(r)))
    batch.release?.()
    const na = { status: 'NOT_AVAILABLE' }
    assert.deepEqual(await server.getFrames(b.id, 'memfile', 'zstd', ranges(b.refs)), na, 'one frame missing')
    assert.deepEqual(await server.getFrames(b.id, 'memfile', 'lz4', ranges(held)), na, 'another codec')
    assert.deepEqual(await server.getFrames(b.id, 'memfile', undefined, ranges(held)), na, 'codec not named')
    assert.deepEqual(await server.getFrames(b.id, 'rootfs', 'zstd', ranges(held)), na, 'another file')
    assert.deepEqual(await server.getFrames(b.id, 'memfile', 'zstd', [{ startC: b.refs[0].startC, sizeC: b.refs[0].sizeC + 1 }]), na, 'another size')
    assert.deepEqual(await server.getFrames(newId(), 'memfile', 'zstd', ranges(held)), na, 'another build')
  })
})

test('a rotten first frame is NOT_AVAILABLE; a later one fails the batch; both are removed, never sent', async () => {
  await withTmp(async (dir) => {
    const { store, server } = await setup(dir)
    const b = await cachedBuild(store)
    const rot = async (r: FrameRef) => writeFile(store.entryPath(r), flipByte(await readFile(store.entryPath(r))))
    await rot(b.refs[0])
    assert.equal((await server.getFrames(b.id, 'memfile', 'zstd', ranges(b.refs))).status, 'NOT_AVAILABLE')
    assert.ok(!store.index.has(b.refs[0]))

    const rest = b.refs.slice(1)
    const batch = batchOf(await server.getFrames(b.id, 'memfile', 'zstd', ranges(rest)))
    await rot(rest[1]) // rots after the OK
    assert.ok(Buffer.from(await batch.frame(0, AbortSignal.timeout(1000))).equals(b.bytes(rest[0])))
    await assert.rejects(batch.frame(1, AbortSignal.timeout(1000)), /no longer servable/)
    batch.release?.()
    assert.ok(!store.index.has(rest[1]))
    assert.equal((await server.getFrames(b.id, 'memfile', 'zstd', ranges([rest[1]]))).status, 'NOT_AVAILABLE')
  })
})

test('never a cached copy of a build whose upload failed, whoever reported it', async () => {
  await withTmp(async (dir) => {
    const { store, board, server } = await setup(dir)
    const b = await cachedBuild(store)
    board.set(b.id, 'pending')
    batchOf(await server.getFrames(b.id, 'memfile', 'zstd', ranges(b.refs))).release?.()
    board.set(b.id, 'failed')
    assert.equal((await server.getFrames(b.id, 'memfile', 'zstd', ranges(b.refs))).status, 'NOT_AVAILABLE')
    const c = await cachedBuild(store, 2, 2)
    await store.index.forbid(c.id) // the board may have forgotten it; the store has not
    assert.equal((await server.getFrames(c.id, 'memfile', 'zstd', ranges(c.refs))).status, 'NOT_AVAILABLE')
  })
})

test('announcer: at most `max` builds, most recently used first; withdrawn on eviction and on failure; never an own build', async () => {
  await withTmp(async (dir) => {
    const { store, builds, board, server } = await setup(dir)
    const announced = new Map<BuildId, BuildAnnouncement>()
    const announcer = { announce: (a: BuildAnnouncement) => announced.set(a.buildId, a), withdraw: (id: BuildId) => announced.delete(id) }
    const [x, y] = [await cachedBuild(store, 2, 1), await cachedBuild(store, 2, 2)]
    const a = new CachedAnnouncer({ store, builds, board, registry: createRegistry(), log: silentLogger, server, announcer, max: 2 })
    assert.deepEqual([...announced.keys()].sort(), [x.id, y.id].sort())
    assert.ok([...announced.values()].every((e) => e.state === 'cached'))

    const z = await cachedBuild(store, 2, 3) // announced at once: the most recent; x is now third
    assert.deepEqual([...announced.keys()].sort(), [y.id, z.id].sort())
    await store.readVerified(x.refs[0]) // x read again: back in the top two after a refresh
    a.refresh()
    assert.deepEqual([...announced.keys()].sort(), [x.id, z.id].sort())

    board.set(z.id, 'failed')
    a.refresh()
    assert.deepEqual([...announced.keys()].sort(), [x.id, y.id].sort())
    await store.index.forbid(x.id) // dropped from the store: withdrawn by the store's event
    assert.deepEqual([...announced.keys()], [y.id])

    // An own build is announced by its origin's rules (and not withdrawn by this one).
    const own = await builds.add(y.id, { parent: null, useCase: 'pause', files: {}, dirty: {} })
    own.state = 'uploaded'
    announced.set(y.id, { buildId: y.id, state: 'uploaded', memfileSize: 0, rootfsSize: 0 })
    a.refresh()
    assert.equal(announced.get(y.id)?.state, 'uploaded')
    a.stop()
  })
})
