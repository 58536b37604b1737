/**
 * ResumedFile on its own: the move from a pending header to the final one, with in-memory fakes of
 * what it uses (a reader per header, the final header from storage) and the real status board. Every
 * read is compared with the source.
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { BuildStatusBoard } from '../../src/cluster/build-status.ts'
import type { Header } from '../../src/format/header.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { BuildUnavailableError, ResumedFile, type ResumedFileDeps } from '../../src/switchover/resumed-file.ts'
import { FakeBuild, fakeHeader, gate, headerPair, unavailable, until } from './fakes.ts'

const SIZE = 64 * 1024

interface Scene {
  file: ResumedFile
  build: FakeBuild
  board: BuildStatusBoard
  source: Buffer
  pending: Header
  final: Header
  switches: [Header, Header][]
}

async function scene(opts: { final?: Header | Error; deps?: Partial<ResumedFileDeps>; board?: BuildStatusBoard } = {}): Promise<Scene> {
  const id = randomUUID()
  const source = randomBytes(SIZE)
  const { pending, final } = headerPair(SIZE, id)
  const build = new FakeBuild(source, opts.final ?? final)
  const board = opts.board ?? new BuildStatusBoard()
  const switches: [Header, Header][] = []
  const deps: ResumedFileDeps = {
    buildId: id,
    kind: 'memfile',
    board,
    log: silentLogger,
    openReader: build.openReader,
    loadFinal: build.loadFinal,
    onSwitch: (from, to) => switches.push([from, to]),
    ...opts.deps,
  }
  const file = await ResumedFile.open(deps, pending)
  return { file, build, board, source, pending, final, switches }
}

async function assertReads(s: Scene, offset: number, length: number): Promise<void> {
  const got = await s.file.read(offset, length)
  assert.ok(Buffer.from(got).equals(s.source.subarray(offset, offset + length)), `bytes ${offset}+${length} equal the source`)
}

test('a pending file reads from its pending reader; no final header is asked for while the pending copy serves', async () => {
  const s = await scene()
  assert.equal(s.file.pending, true)
  assert.equal(s.file.size, SIZE)
  await assertReads(s, 0, SIZE)
  await assertReads(s, 4095, 3)
  assert.equal(s.build.finalCalls, 0)
  assert.equal(s.build.readers.length, 1)
  await s.file.close()
  assert.equal(s.build.reader(0).closed, 1)
})

test('the board saying "uploaded" moves the file to the final header once, in the background; the pending reader is closed', async () => {
  const s = await scene()
  s.board.set(s.pending.buildId, 'uploaded')
  await until('the switch', () => s.switches.length === 1)
  assert.equal(s.file.pending, false)
  assert.equal(s.file.header, s.final)
  assert.equal(s.switches[0][0], s.pending)
  assert.equal(s.switches[0][1], s.final)
  assert.equal(s.build.reader(0).closed, 1, 'the pending reader is closed once nothing reads from it')
  await assertReads(s, 100, 10_000)
  assert.equal(s.build.reader(1).reads, 1, 'reads go to the final reader')
  s.board.set(s.pending.buildId, 'uploaded')
  assert.equal(s.build.finalCalls, 1, 'the switch happens once per file')
  await s.file.close()
  assert.equal(s.build.reader(1).closed, 1)
})

test('a file opened after the board learnt "uploaded" switches at once', async () => {
  const board = new BuildStatusBoard()
  const id = randomUUID()
  board.set(id, 'uploaded')
  const source = randomBytes(SIZE)
  const { pending, final } = headerPair(SIZE, id)
  const build = new FakeBuild(source, final)
  const file = await ResumedFile.open({ buildId: id, kind: 'memfile', board, log: silentLogger, openReader: build.openReader, loadFinal: build.loadFinal }, pending)
  await until('the switch', () => !file.pending)
  assert.equal(build.finalCalls, 1)
  await file.close()
})

test('reads the pending copy cannot serve are redone whole under the final header; concurrent ones share one switch', async () => {
  const s = await scene()
  s.build.reader(0).fail = unavailable()
  const reads = [0, 1000, 30_000, SIZE - 5].map(async (off) => {
    const len = Math.min(5000, SIZE - off)
    const got = await s.file.read(off, len)
    assert.ok(Buffer.from(got).equals(s.source.subarray(off, off + len)))
  })
  await Promise.all(reads)
  assert.equal(s.build.finalCalls, 1)
  assert.equal(s.switches.length, 1)
  assert.equal(s.file.pending, false)
  await s.file.close()
})

test('a read in flight on the pending reader during the switch finishes there; the pending reader closes after it', async () => {
  const s = await scene()
  const g = gate()
  s.build.reader(0).gate = g.promise
  const slow = s.file.read(0, 8192)
  await until('the slow read started', () => s.build.reader(0).reads === 1)
  s.board.set(s.pending.buildId, 'uploaded')
  await until('the switch', () => s.switches.length === 1)
  assert.equal(s.build.reader(0).closed, 0, 'not closed under a read in flight')
  g.open()
  assert.ok(Buffer.from(await slow).equals(s.source.subarray(0, 8192)))
  await until('the retired reader closed', () => s.build.reader(0).closed === 1)
  await s.file.close()
})

test('a final header that promises other content breaks the file: the read that found it fails naming it, later ones ERR_SWITCHOVER', async () => {
  const id = randomUUID()
  const { pending } = headerPair(SIZE, id)
  const build = new FakeBuild(randomBytes(SIZE), fakeHeader(id, SIZE, { incomplete: false }))
  const file = await ResumedFile.open({ buildId: id, kind: 'memfile', board: new BuildStatusBoard(), log: silentLogger, openReader: build.openReader, loadFinal: build.loadFinal }, pending)
  build.reader(0).fail = unavailable()
  // The read that ran into it reports both: the pending copy could not serve it, and why the final header was refused.
  await assert.rejects(file.read(0, 4096), { code: 'ERR_BUILD_UNAVAILABLE', message: /does not match the pending one: layer .* SHA-256 differs/ })
  build.reader(0).fail = null
  await assert.rejects(file.read(0, 4096), { code: 'ERR_SWITCHOVER', message: /SHA-256 differs/ }, 'a broken file serves nothing, not even from the pending copy')
  assert.equal(build.reader(0).reads, 1, 'the pending copy was not read again')
  assert.equal(build.readers.length, 1, 'no reader was opened on the contradicting header')
  await file.close()
})

test('a final header of another size is refused as well', async () => {
  const id = randomUUID()
  const { pending } = headerPair(SIZE, id)
  const build = new FakeBuild(randomBytes(SIZE), fakeHeader(id, SIZE * 2, { incomplete: false }))
  const file = await ResumedFile.open({ buildId: id, kind: 'memfile', board: new BuildStatusBoard(), log: silentLogger, openReader: build.openReader, loadFinal: build.loadFinal }, pending)
  build.reader(0).fail = unavailable()
  await assert.rejects(file.read(0, 16), { code: 'ERR_BUILD_UNAVAILABLE', message: new RegExp(`size ${SIZE * 2}, pending ${SIZE}`) })
  await assert.rejects(file.read(0, 16), { code: 'ERR_SWITCHOVER' })
  await file.close()
})

test('an upload the board reports failed: ERR_UPLOAD_FAILED at once, or reads go on from the origin when so configured', async () => {
  const s = await scene()
  s.board.set(s.pending.buildId, 'failed')
  await assert.rejects(s.file.read(0, 4096), { code: 'ERR_UPLOAD_FAILED' })
  assert.equal(s.build.reader(0).reads, 0, 'nothing was read for it')
  await s.file.close()

  const board = new BuildStatusBoard()
  const t = await scene({ board, deps: { onUploadFailed: 'read-from-origin' } })
  board.set(t.pending.buildId, 'failed')
  await assertReads(t, 0, 4096)
  t.build.reader(0).fail = unavailable()
  await assert.rejects(t.file.read(0, 4096), { code: 'ERR_UPLOAD_FAILED' }, 'a read the origin cannot serve any more')
  assert.equal(t.build.finalCalls, 0)
  await t.file.close()
})

test('the origin cannot serve and the final header never appears: ERR_BUILD_UNAVAILABLE naming both causes', async () => {
  const s = await scene({ final: new BuildUnavailableError('the final header did not appear in storage within 10 ms') })
  s.build.reader(0).fail = unavailable()
  await assert.rejects(s.file.read(0, 4096), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_BUILD_UNAVAILABLE')
    assert.match(err.message, /pending and its origin cannot serve it \(no source produced a verified frame 0.*the final header did not appear in storage/)
    return true
  })
  assert.equal(s.file.pending, true, 'still on the pending header: a later read may switch')
  await s.file.close()
})

test('a local disk error is not the pending copy\'s fault: it is returned as is, without a switchover', async () => {
  const s = await scene()
  const eio = Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO', syscall: 'read', errno: -5 })
  s.build.reader(0).fail = eio
  await assert.rejects(s.file.read(0, 4096), (err) => err === eio)
  assert.equal(s.build.finalCalls, 0)
  await s.file.close()
})

test('a caller\'s abort ends its read only; the switchover it started is not cut short for the others', async () => {
  const s = await scene()
  const g = gate()
  s.build.finalGate = g.promise
  s.build.reader(0).fail = unavailable()
  const ac = new AbortController()
  const aborted = s.file.read(0, 4096, ac.signal)
  const other = s.file.read(4096, 4096)
  await until('the switch started', () => s.build.finalCalls === 1)
  ac.abort(new Error('client went away'))
  await assert.rejects(aborted, /client went away/)
  g.open()
  assert.ok(Buffer.from(await other).equals(s.source.subarray(4096, 8192)))
  assert.equal(s.build.finalCalls, 1)
  await s.file.close()
})

test('close() stops a switchover waiting for the final header, closes the reader, and later reads fail clearly', async () => {
  const s = await scene()
  s.build.finalGate = new Promise(() => {}) // storage never answers
  s.board.set(s.pending.buildId, 'uploaded')
  await until('the switch started', () => s.build.finalCalls === 1)
  await s.file.close()
  assert.equal(s.build.finalSignals[0].aborted, true, 'the poll was aborted')
  assert.equal(s.build.reader(0).closed, 1)
  assert.equal(s.build.readers.length, 1)
  await assert.rejects(s.file.read(0, 1), { code: 'ERR_BUILD_UNAVAILABLE', message: /is closed/ })
  await s.file.close() // idempotent
  assert.equal(s.build.reader(0).closed, 1)
})

test('the observer is told of every read with the reader it starts on; prefetches are not reads', async () => {
  const s = await scene()
  const seen: [number, number][] = []
  s.file.observe((offset, length, reader) => {
    assert.equal(reader.header, s.file.header)
    seen.push([offset, length])
  })
  await assertReads(s, 0, 100)
  await assertReads(s, 8192, 4096)
  await s.file.prefetchAt(0)
  s.file.observe(null)
  await assertReads(s, 0, 1)
  assert.deepEqual(seen, [
    [0, 100],
    [8192, 4096],
  ])
  await s.file.close()
})
