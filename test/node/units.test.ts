/** Unit tests of the daemon's pure pieces: HTTP ranges, pause requests, the switchover content check. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FrameTable } from '../../src/format/frame-table.ts'
import type { Header } from '../../src/format/header.ts'
import { parseRange } from '../../src/api/http-api.ts'
import { parsePauseRequest } from '../../src/origin/pause.ts'
import { checkSameContent } from '../../src/switchover/resumed-file.ts'

test('parseRange: single ranges, suffixes, clamping, unsatisfiable', () => {
  assert.equal(parseRange(undefined, 100), null)
  assert.deepEqual(parseRange('bytes=0-9', 100), [0, 9])
  assert.deepEqual(parseRange('bytes=90-', 100), [90, 99])
  assert.deepEqual(parseRange('bytes=-10', 100), [90, 99])
  assert.deepEqual(parseRange('bytes=50-1000', 100), [50, 99])
  assert.equal(parseRange('bytes=100-200', 100), 'unsatisfiable')
  assert.equal(parseRange('bytes=9-3', 100), 'unsatisfiable')
  assert.equal(parseRange('bytes=0-1,5-6', 100), null, 'multi-range requests are served whole')
  assert.equal(parseRange('items=0-1', 100), null)
})

test('parsePauseRequest: validates every field with a message naming it', () => {
  const ok = parsePauseRequest({ parent: null, useCase: 'pause', files: { memfile: '/a/mem' } })
  assert.deepEqual(ok, { parent: null, useCase: 'pause', files: { memfile: '/a/mem' }, dirty: {} })
  const child = parsePauseRequest({ parent: '0f8e0c4a-1b2c-4d5e-8f90-a1b2c3d4e5f6', files: { rootfs: '/r' }, dirty: { rootfs: [[0, 4096]] } })
  assert.equal(child.useCase, 'pause')
  const bad: [unknown, RegExp][] = [
    [{ files: {} }, /at least one of memfile, rootfs/],
    [{ files: { memfile: 'relative' } }, /files\.memfile: expected an absolute path/],
    [{ files: { memfile: '/m', kernel: '/k' } }, /files: unknown file 'kernel'/],
    [{ parent: 'nope', files: { memfile: '/m' } }, /parent: expected a UUID/],
    [{ useCase: 'resume', files: { memfile: '/m' } }, /useCase/],
    [{ files: { memfile: '/m' }, dirty: { memfile: [[0, 1]] } }, /dirty: needs a parent/],
    [{ parent: '0f8e0c4a-1b2c-4d5e-8f90-a1b2c3d4e5f6', files: { memfile: '/m' }, dirty: { memfile: [[0]] } }, /dirty\.memfile/],
    [{ files: { memfile: '/m' }, extra: 1 }, /unknown field 'extra'/],
  ]
  for (const [body, re] of bad) assert.throws(() => parsePauseRequest(body), re)
})

function header(over: Partial<Header> = {}): Header {
  const id = '11111111-1111-4111-8111-111111111111'
  const sha = new Uint8Array(32).fill(7)
  return {
    version: 4,
    blockSize: 4096,
    size: 8192,
    generation: 0,
    buildId: id,
    baseBuildId: id,
    incomplete: true,
    builds: new Map([[id, { buildId: id, fileSize: 8192, sha256: sha, frames: FrameTable.fromSizes('lz4', [{ sizeU: 8192, sizeC: 100 }]) }]]),
    mappings: [{ offset: 0, length: 8192, buildId: id, buildStorageOffset: 0 }],
    ...over,
  }
}

test('checkSameContent: another geometry of the same content passes; any contradiction is refused', () => {
  const pending = header()
  const id = pending.buildId
  const zstd = { buildId: id, fileSize: 8192, sha256: new Uint8Array(32).fill(7), frames: FrameTable.fromSizes('zstd', [{ sizeU: 8192, sizeC: 90 }]) }
  checkSameContent(pending, header({ incomplete: false, builds: new Map([[id, zstd]]) }))
  assert.throws(() => checkSameContent(pending, header({ incomplete: true })), /pending flag/)
  assert.throws(() => checkSameContent(pending, header({ incomplete: false, size: 4096, mappings: [{ offset: 0, length: 4096, buildId: id, buildStorageOffset: 0 }] })), /size/)
  assert.throws(() => checkSameContent(pending, header({ incomplete: false, buildId: '22222222-2222-4222-8222-222222222222' })), /build id/)
  const otherSha = { ...zstd, sha256: new Uint8Array(32).fill(9) }
  assert.throws(() => checkSameContent(pending, header({ incomplete: false, builds: new Map([[id, otherSha]]) })), /SHA-256 differs/)
  assert.throws(() => checkSameContent(pending, header({ incomplete: false, mappings: [{ offset: 0, length: 8192, buildId: id, buildStorageOffset: 4096 }] })), /mapping 0 differs/)
})
