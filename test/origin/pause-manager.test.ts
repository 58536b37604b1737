/**
 * PauseManager on its own, without a node: real files, a real filesystem bucket and real pause
 * records; its narrow interfaces to the rest of the node (the parent's header, the parent's final
 * header, the state listener) are fakes the test drives. Every byte stored is read back from storage
 * and compared with the source.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { Header } from '../../src/format/header.ts'
import type { BuildId, FileKind } from '../../src/format/types.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { createRegistry } from '../../src/obs/metrics.ts'
import type { LocalBuild, PauseRequest } from '../../src/origin/local-builds.ts'
import { LocalBuilds } from '../../src/origin/local-builds.ts'
import { type PauseDeps, PauseManager } from '../../src/origin/pause.ts'
import { openStoredBuildFile } from '../../src/read/open.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import { RateLimiter } from '../../src/upload/rate-limit.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'

const MiB = 1024 * 1024
let dir: string
let store: FsStore
let seed = 100

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-pause-manager-'))
  store = await FsStore.open(join(dir, 'bucket'))
})

after(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

/** A pause manager over `dataDir` whose parent lookups and state changes the test sees. */
function manager(dataDir: string, over: Partial<PauseDeps> = {}) {
  const states: { id: BuildId; state: string; error?: string }[] = []
  const registry = createRegistry()
  const builds = new LocalBuilds(dataDir)
  const pm = new PauseManager({
    store,
    builds,
    pendingCodec: 'lz4',
    limiter: new RateLimiter(0),
    parentHeader: (id, kind) => storedHeader(id, kind),
    finalHeader: (id, kind) => storedHeader(id, kind),
    onState: (b: LocalBuild) => states.push({ id: b.id, state: b.state, error: b.error }),
    // A node's writer identity comes from its data dir (its peer id), so a restart is the same writer.
    writer: `node:test-${dataDir}`,
    log: silentLogger,
    registry,
    ...over,
  })
  const stateOf = (id: BuildId) => states.filter((s) => s.id === id).at(-1)
  return { pm, builds, states, stateOf, registry }
}

async function storedHeader(id: BuildId, kind: FileKind): Promise<Header> {
  const f = await openStoredBuildFile({ store, buildId: id, kind, cacheDir: join(dir, `cache-${randomUUID()}`) })
  await f.close()
  return f.header
}

/** Every byte of a stored build file, read back through the read path from storage. */
async function readStored(id: BuildId, kind: FileKind = 'memfile'): Promise<Buffer> {
  const cacheDir = join(dir, `cache-${randomUUID()}`)
  const f = await openStoredBuildFile({ store, buildId: id, kind, cacheDir })
  try {
    return Buffer.from(await f.read(0, f.size))
  } finally {
    await f.close()
    await rm(cacheDir, { recursive: true, force: true })
  }
}

async function source(size: number, name = `src-${seed}`): Promise<{ path: string; data: Buffer }> {
  const data = new VmDataGenerator(seed++).next(size)
  const path = join(dir, name)
  await writeFile(path, data)
  return { path, data }
}

function request(files: PauseRequest['files'], more: Partial<PauseRequest> = {}): PauseRequest {
  return { parent: null, useCase: 'pause', files, dirty: {}, ...more }
}

async function until<T>(what: string, fn: () => T | undefined | false, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

test('a pause is recorded at once, framed locally, announced pending with a pending header, then uploaded byte-exact', async () => {
  const { pm, builds, states, stateOf, registry } = manager(join(dir, 'node-a'))
  const mem = await source(5 * MiB + 123)
  const snap = await source(3000, 'snapfile')
  const id = randomUUID()
  const build = await pm.pause(id, request({ memfile: mem.path, snapfile: snap.path }))
  assert.equal(build.state, 'framing', 'the answer comes before the work')
  assert.equal(builds.get(id), build)
  await until('uploaded', () => stateOf(id)?.state === 'uploaded')
  assert.deepEqual(
    states.filter((s) => s.id === id).map((s) => s.state),
    ['pending', 'uploaded'],
  )
  const local = build.files.get('memfile')!
  assert.equal(local.header.incomplete, true, 'peers were served a pending header')
  assert.equal(local.info.frames.codec, 'lz4', 'in the pending codec')
  assert.ok((await readStored(id)).equals(mem.data), 'storage holds the source byte for byte')
  assert.equal((await storedHeader(id, 'memfile')).incomplete, false)
  assert.ok(Buffer.from(await store.get(`${id}/snapfile`)).equals(snap.data))
  const uploads = await registry.getSingleMetric('snapswarm_uploads_total')!.get()
  assert.deepEqual(
    uploads.values.map((v) => [v.labels.result, v.value]),
    [['ok', 1]],
  )
  await pm.stop()
})

test('an id already in storage, or already paused here, is refused with ERR_BUILD_EXISTS; concurrent pauses of one id: one wins', async () => {
  const { pm, stateOf } = manager(join(dir, 'node-b'))
  const mem = await source(MiB)
  const id = randomUUID()
  const results = await Promise.allSettled([pm.pause(id, request({ memfile: mem.path })), pm.pause(id, request({ memfile: mem.path }))])
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
  const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult
  assert.equal(refused.reason.code, 'ERR_BUILD_EXISTS')
  await until('the winner uploaded', () => stateOf(id)?.state === 'uploaded')
  await assert.rejects(pm.pause(id, request({ memfile: mem.path })), { code: 'ERR_BUILD_EXISTS', message: /already paused here/ })
  await pm.stop()

  const other = manager(join(dir, 'node-c'))
  const stored = randomUUID()
  await other.pm.pause(stored, request({ memfile: mem.path }))
  await until('uploaded', () => other.stateOf(stored)?.state === 'uploaded')
  const third = manager(join(dir, 'node-d'))
  await assert.rejects(third.pm.pause(stored, request({ memfile: mem.path })), { code: 'ERR_BUILD_EXISTS', message: /found its header in storage/ })
  assert.equal(third.builds.get(stored), undefined, 'nothing was recorded')
  await Promise.all([other.pm.stop(), third.pm.stop()])
})

test('bad input is refused before the id is taken: the same id pauses once the input is right', async () => {
  const { pm, stateOf } = manager(join(dir, 'node-e'))
  const id = randomUUID()
  await assert.rejects(pm.pause(id, request({ memfile: join(dir, 'no-such-file') })), { code: 'ERR_FILE_NOT_FOUND' })
  const mem = await source(MiB)
  await pm.pause(id, request({ memfile: mem.path }))
  await until('uploaded', () => stateOf(id)?.state === 'uploaded')
  assert.ok((await readStored(id)).equals(mem.data))
  await pm.stop()
})

test('stop() interrupts an upload and keeps its record pending; a restarted manager recovers it and finishes the upload', async () => {
  const dataDir = join(dir, 'node-f')
  const first = manager(dataDir, { limiter: new RateLimiter(100_000) })
  const mem = await source(4 * MiB)
  const id = randomUUID()
  await first.pm.pause(id, request({ memfile: mem.path }))
  await until('pending', () => first.stateOf(id)?.state === 'pending')
  await first.pm.stop()
  assert.equal(first.builds.get(id)?.state, 'pending', 'the record stays pending across a shutdown')

  const second = manager(dataDir)
  await second.pm.recover()
  const last = await until('uploaded after the restart', () => ['uploaded', 'failed'].includes(second.stateOf(id)?.state ?? '') && second.stateOf(id))
  assert.equal(last.state, 'uploaded', `the restarted manager failed the build: ${last.error}`)
  assert.ok((await readStored(id)).equals(mem.data))
  await second.pm.stop()
})

test('a source rewritten while its origin was down fails the build on recovery (ERR_SOURCE_CHANGED), never uploaded', async () => {
  const dataDir = join(dir, 'node-g')
  const first = manager(dataDir, { limiter: new RateLimiter(100_000) })
  const mem = await source(2 * MiB, 'rewritten')
  const id = randomUUID()
  await first.pm.pause(id, request({ memfile: mem.path }))
  await until('pending', () => first.stateOf(id)?.state === 'pending')
  await first.pm.stop()
  await writeFile(mem.path, new VmDataGenerator(999).next(2 * MiB))

  const second = manager(dataDir)
  await second.pm.recover()
  const failed = await until('failed', () => (second.stateOf(id)?.state === 'failed' ? second.stateOf(id) : undefined))
  assert.match(failed.error ?? '', /ERR_SOURCE_CHANGED: files\.memfile: .* is not the file this build was paused from/)
  assert.equal(await store.exists(`${id}/memfile.header`), false, 'no header was stored')
  await second.pm.stop()
})

test('a child waits for its parent\'s final header before uploading; its stored file is the parent with the dirty range replaced', async () => {
  const parentMgr = manager(join(dir, 'node-h'))
  const size = 4 * MiB
  const parent = await source(size)
  const parentId = randomUUID()
  await parentMgr.pm.pause(parentId, request({ memfile: parent.path }))
  await until('parent uploaded', () => parentMgr.stateOf(parentId)?.state === 'uploaded')

  let release!: () => void
  const parentFinal = new Promise<void>((r) => {
    release = r
  })
  let finalAsked = 0
  const child = manager(join(dir, 'node-i'), {
    finalHeader: async (id, kind) => {
      finalAsked++
      await parentFinal
      return storedHeader(id, kind)
    },
  })
  // The child's file holds only its dirty range's bytes; its virtual file is the parent's with them in place.
  const dirty: [number, number] = [2 * MiB, 4 * MiB]
  const diff = new VmDataGenerator(4242).next(dirty[1] - dirty[0])
  const childData = Buffer.from(parent.data)
  diff.copy(childData, dirty[0])
  const childSrc = join(dir, 'child-src')
  await writeFile(childSrc, diff)
  const id = randomUUID()
  await child.pm.pause(id, request({ memfile: childSrc }, { parent: parentId, dirty: { memfile: [dirty] } }))
  await until('the child pending', () => child.stateOf(id)?.state === 'pending')
  await until('the parent\'s final header asked for', () => finalAsked === 1)
  assert.equal(child.stateOf(id)?.state, 'pending', 'not uploaded before its parent is final')
  release()
  await until('the child uploaded', () => child.stateOf(id)?.state === 'uploaded')
  assert.ok((await readStored(id)).equals(childData))
  await Promise.all([parentMgr.pm.stop(), child.pm.stop()])
})

test('a child whose parent never becomes final fails with the reason, and the failure is counted', async () => {
  const parentMgr = manager(join(dir, 'node-j'))
  const parent = await source(2 * MiB)
  const parentId = randomUUID()
  await parentMgr.pm.pause(parentId, request({ memfile: parent.path }))
  await until('parent uploaded', () => parentMgr.stateOf(parentId)?.state === 'uploaded')
  const child = manager(join(dir, 'node-k'), {
    finalHeader: async () => {
      throw Object.assign(new Error(`build ${parentId} is not readable: its origin reports the upload failed`), { code: 'ERR_UPLOAD_FAILED' })
    },
  })
  const id = randomUUID()
  await child.pm.pause(id, request({ memfile: parent.path }, { parent: parentId, dirty: { memfile: [[0, 2 * MiB]] } }))
  const failed = await until('failed', () => (child.stateOf(id)?.state === 'failed' ? child.stateOf(id) : undefined))
  assert.match(failed.error ?? '', /origin reports the upload failed/)
  const uploads = await child.registry.getSingleMetric('snapswarm_uploads_total')!.get()
  assert.deepEqual(
    uploads.values.map((v) => [v.labels.result, v.value]),
    [['failed', 1]],
  )
  assert.equal(await store.exists(`${id}/memfile.header`), false)
  await Promise.all([parentMgr.pm.stop(), child.pm.stop()])
})
