/**
 * The copy-on-write overlay on real files: merged reads, unaligned writes (read-modify-write of the
 * edge blocks), zeroing, the map written atomically with its checksum and reloaded after a reopen,
 * a damaged or foreign map refused, and the build under it never written.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { BuildId } from '../../src/format/types.ts'
import { DATA, Overlay, OVERLAY_BLOCK, ZERO } from '../../src/nbd/overlay.ts'
import { widen } from '../../src/nbd/pause-overlay.ts'

const SIZE = 64 * 1024 + 1000 // not a multiple of the block: the last block is short
const ID = '6f1c2f8e-8d6a-4b1e-9c3d-2a7b5e4f1a00' as BuildId
let dir: string
let base: Buffer
let baseReads = 0
const read = async (dst: Buffer, offset: number) => {
  baseReads++
  base.copy(dst, 0, offset, offset + dst.byteLength)
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-overlay-'))
  base = randomBytes(SIZE)
})

after(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function readAll(o: Overlay): Promise<Buffer> {
  const out = Buffer.alloc(SIZE)
  await o.readInto(out, 0, read)
  return out
}

test('writes, unaligned writes and zeros merge over the build; flush then reopen gives the same view', async () => {
  const d = join(dir, 'a')
  const before = Buffer.from(base)
  const expected = Buffer.from(base)
  let o = await Overlay.open(d, { buildId: ID, kind: 'rootfs', size: SIZE })
  const w1 = randomBytes(8192)
  await o.write(w1, 4096, read)
  w1.copy(expected, 4096)
  const w2 = randomBytes(100) // inside block 5, unaligned both ends
  await o.write(w2, 5 * OVERLAY_BLOCK + 17, read)
  w2.copy(expected, 5 * OVERLAY_BLOCK + 17)
  await o.zero(7 * OVERLAY_BLOCK - 10, 2 * OVERLAY_BLOCK + 20, read) // partial, whole, partial
  expected.fill(0, 7 * OVERLAY_BLOCK - 10, 9 * OVERLAY_BLOCK + 10)
  const tail = randomBytes(500)
  await o.write(tail, SIZE - 500, read) // the short last block
  tail.copy(expected, SIZE - 500)
  assert.ok((await readAll(o)).equals(expected))
  assert.deepEqual(
    o.runs().map((r) => [r.start / OVERLAY_BLOCK, Math.ceil(r.end / OVERLAY_BLOCK), r.state]),
    // Block 6 and 9 hold the zeroing's partial ends as data; 7 and 8 are whole zero blocks.
    [
      [1, 3, DATA],
      [5, 7, DATA],
      [7, 9, ZERO],
      [9, 10, DATA],
      [16, 17, DATA],
    ],
  )
  await o.flush()
  await o.close()
  o = await Overlay.open(d, { buildId: ID, kind: 'rootfs', size: SIZE })
  assert.ok((await readAll(o)).equals(expected), 'the reopened overlay reads as before')
  assert.equal(o.dirtyBytes, 8 * OVERLAY_BLOCK)
  await o.close()
  assert.ok(base.equals(before), 'the build under the overlay is never written')
})

test('a damaged map is refused with its own error; a map over another build too', async () => {
  const d = join(dir, 'b')
  const o = await Overlay.open(d, { buildId: ID, kind: 'memfile', size: SIZE })
  await o.write(randomBytes(4096), 0, read)
  await o.flush()
  await o.close()
  await assert.rejects(Overlay.open(d, { buildId: ID, kind: 'rootfs', size: SIZE }), { code: 'ERR_INVALID_ARGUMENT', message: /is over .*memfile.*not .*rootfs/ })
  const map = await readFile(join(d, 'map'))
  map[map.byteLength - 40] ^= 0xff
  await writeFile(join(d, 'map'), map)
  await assert.rejects(Overlay.open(d, { buildId: ID, kind: 'memfile', size: SIZE }), { code: 'ERR_FORMAT', message: /checksum/ })
  await writeFile(join(d, 'map'), map.subarray(0, 20))
  await assert.rejects(Overlay.open(d, { buildId: ID, kind: 'memfile', size: SIZE }), { code: 'ERR_FORMAT' })
})

test('reads of whole overlay blocks never touch the build; ranges outside the file are refused', async () => {
  const o = await Overlay.open(join(dir, 'c'), { buildId: ID, kind: 'rootfs', size: SIZE })
  await o.write(randomBytes(2 * OVERLAY_BLOCK), 0, read)
  const n = baseReads
  await o.readInto(Buffer.alloc(2 * OVERLAY_BLOCK), 0, read)
  assert.equal(baseReads, n)
  await assert.rejects(o.write(Buffer.alloc(10), SIZE - 5, read), { code: 'ERR_INVALID_ARGUMENT' })
  await assert.rejects(o.readInto(Buffer.alloc(10), -1, read), { code: 'ERR_INVALID_ARGUMENT' })
  await o.close()
})

test('dirty runs widen to the parent block size, merged, the last one ending at the file size', () => {
  const MiB2 = 2 * 1024 * 1024
  assert.deepEqual(
    widen(
      [
        { start: 4096, end: 8192 },
        { start: MiB2 - 4096, end: MiB2 + 4096 },
        { start: 3 * MiB2 + 4096, end: 3 * MiB2 + 8192 },
      ],
      MiB2,
      3 * MiB2 + 10_000,
    ),
    [
      [0, 2 * MiB2],
      [3 * MiB2, 3 * MiB2 + 10_000],
    ],
  )
})
