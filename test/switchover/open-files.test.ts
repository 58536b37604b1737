/**
 * OpenFiles on its own: one ResumedFile per (build, file kind) shared by every reader, with
 * in-memory fakes of the header lookup, the readers and the prefetch sessions. Every read is
 * compared with the source.
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { BuildStatusBoard } from '../../src/cluster/build-status.ts'
import type { Header } from '../../src/format/header.ts'
import type { BuildId, FileKind } from '../../src/format/types.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { OpenFiles } from '../../src/switchover/open-files.ts'
import type { ResumedFile } from '../../src/switchover/resumed-file.ts'
import { FakeBuild, gate, headerPair } from './fakes.ts'

const SIZE = 32 * 1024

/** One build's files behind fakes, counting header lookups and prefetch sessions. */
function world() {
  const id = randomUUID()
  const builds = new Map<FileKind, { build: FakeBuild; pending: Header }>()
  for (const kind of ['memfile', 'rootfs'] as const) {
    const { pending, final } = headerPair(SIZE, id)
    builds.set(kind, { build: new FakeBuild(randomBytes(SIZE), final), pending })
  }
  const lookups: { id: BuildId; kind: FileKind; signal?: AbortSignal }[] = []
  const sessions: { kind: FileKind; file: ResumedFile; closed: number }[] = []
  let headerGate: Promise<void> | null = null
  let headerError: Error | null = null
  const files = new OpenFiles({
    board: new BuildStatusBoard(),
    log: silentLogger,
    initialHeader: async (bid, kind, signal) => {
      lookups.push({ id: bid, kind, signal })
      if (headerGate) await headerGate
      if (headerError) throw headerError
      return builds.get(kind)!.pending
    },
    loadFinal: (_bid, kind, signal) => builds.get(kind)!.build.loadFinal(signal),
    openReader: (header, kind) => builds.get(kind)!.build.openReader(header),
    prefetch: {
      attach: (_bid, kind, file) => {
        const s = { kind, file, closed: 0 }
        sessions.push(s)
        return { close: async () => void s.closed++ }
      },
    },
  })
  return {
    id,
    files,
    lookups,
    sessions,
    build: (kind: FileKind) => builds.get(kind)!.build,
    holdHeaders: (g: Promise<void> | null) => {
      headerGate = g
    },
    failHeaders: (err: Error | null) => {
      headerError = err
    },
  }
}

test('concurrent opens of one file share one ResumedFile, one header lookup and one prefetch session; another kind is its own file', async () => {
  const w = world()
  const [a, b] = await Promise.all([w.files.open(w.id, 'memfile'), w.files.open(w.id, 'memfile')])
  const c = await w.files.open(w.id, 'rootfs')
  assert.equal(a.file, b.file)
  assert.notEqual(a.file, c.file)
  assert.deepEqual(
    w.lookups.map((l) => l.kind),
    ['memfile', 'rootfs'],
  )
  assert.equal(w.sessions.length, 2)
  assert.equal(a.size, SIZE)
  const mem = w.build('memfile').source
  assert.ok(Buffer.from(await a.read(100, 5000)).equals(mem.subarray(100, 5100)))
  const dst = Buffer.alloc(4096)
  await b.readInto(dst, 8192)
  assert.ok(dst.equals(mem.subarray(8192, 12288)))
  assert.ok(Buffer.from(await c.read(0, SIZE)).equals(w.build('rootfs').source))
  await Promise.all([a.close(), b.close(), c.close()])
  await w.files.closeAll()
})

test('the shared lookup runs without any caller\'s signal: a caller that gives up does not fail the others', async () => {
  const w = world()
  const g = gate()
  w.holdHeaders(g.promise)
  const ac = new AbortController()
  const quitter = w.files.open(w.id, 'memfile', ac.signal)
  const stayer = w.files.open(w.id, 'memfile')
  ac.abort(new Error('client went away'))
  await assert.rejects(quitter, /client went away/)
  g.open()
  const h = await stayer
  assert.equal(w.lookups.length, 1)
  assert.equal(w.lookups[0].signal, undefined, 'no caller signal reaches the shared lookup')
  assert.ok(Buffer.from(await h.read(0, 4096)).equals(w.build('memfile').source.subarray(0, 4096)))
  await h.close()
  await w.files.closeAll()
})

test('a lookup that fails fails every waiter, and the next open looks the file up again', async () => {
  const w = world()
  const g = gate()
  w.holdHeaders(g.promise)
  w.failHeaders(Object.assign(new Error('build x is not in storage and no peer has it'), { code: 'ERR_NOT_FOUND' }))
  const both = [w.files.open(w.id, 'memfile'), w.files.open(w.id, 'memfile')]
  g.open()
  for (const p of both) await assert.rejects(p, { code: 'ERR_NOT_FOUND' })
  assert.equal(w.lookups.length, 1)
  w.failHeaders(null)
  w.holdHeaders(null)
  const h = await w.files.open(w.id, 'memfile')
  assert.equal(w.lookups.length, 2, 'a failed open is not kept')
  assert.ok(Buffer.from(await h.read(0, SIZE)).equals(w.build('memfile').source))
  await h.close()
  await w.files.closeAll()
})

test('a file whose last user left stays open for the next range request, then closes with its prefetch session', async (t) => {
  const w = world()
  const first = await w.files.open(w.id, 'memfile')
  t.mock.timers.enable({ apis: ['setTimeout'] })
  try {
    await first.close()
    await first.close() // a second close of one handle releases nothing more
    const again = await w.files.open(w.id, 'memfile')
    assert.equal(again.file, first.file, 'reopened within the idle time: the same file')
    assert.equal(w.lookups.length, 1)
    await again.close()
    t.mock.timers.tick(30_000)
  } finally {
    t.mock.timers.reset()
  }
  const reader = w.build('memfile').reader(0)
  for (let i = 0; i < 100 && reader.closed === 0; i++) await new Promise((r) => setImmediate(r))
  assert.equal(reader.closed, 1, 'the idle file was closed')
  assert.equal(w.sessions[0].closed, 1, 'and its prefetch session')
  const fresh = await w.files.open(w.id, 'memfile')
  assert.notEqual(fresh.file, first.file)
  assert.equal(w.lookups.length, 2)
  await fresh.close()
  await w.files.closeAll()
})

test('closeAll closes every open file and its session, even with users still holding handles', async () => {
  const w = world()
  const a = await w.files.open(w.id, 'memfile')
  const b = await w.files.open(w.id, 'rootfs')
  await w.files.closeAll()
  assert.equal(w.build('memfile').reader(0).closed, 1)
  assert.equal(w.build('rootfs').reader(0).closed, 1)
  assert.deepEqual(
    w.sessions.map((s) => s.closed),
    [1, 1],
  )
  await assert.rejects(a.read(0, 1), { code: 'ERR_BUILD_UNAVAILABLE' })
  await Promise.all([a.close(), b.close()])
  await w.files.closeAll()
})

test('the switchover of a shared file is seen by every handle', async () => {
  const w = world()
  const a = await w.files.open(w.id, 'memfile')
  const b = await w.files.open(w.id, 'memfile')
  w.build('memfile').reader(0).fail = Object.assign(new Error('no source produced a verified frame'), { code: 'ERR_FRAME_UNAVAILABLE' })
  const src = w.build('memfile').source
  assert.ok(Buffer.from(await a.read(0, 4096)).equals(src.subarray(0, 4096)))
  assert.equal(a.file.pending, false)
  assert.ok(Buffer.from(await b.read(4096, 4096)).equals(src.subarray(4096, 8192)))
  assert.equal(w.build('memfile').finalCalls, 1)
  await Promise.all([a.close(), b.close()])
  await w.files.closeAll()
})

