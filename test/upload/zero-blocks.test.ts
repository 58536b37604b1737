/**
 * Zero blocks as holes on push (uploadBuild into a real filesystem bucket): a VM-like file with ~45%
 * zero pages stores at least 40% fewer uncompressed bytes (and a raw build that many fewer object
 * bytes) than with every byte kept, reads back byte-exact through the lazy read path with the holes
 * answered as zeros without a fetch, passes `inspect --verify`'s checks (frame checksums, a raw
 * build's chunk digests, the SHA-256), and every header written satisfies e2b's 4 KiB rule. A
 * child's dirty block that is all zero becomes a nil mapping that shadows its parent.
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Header } from '../../src/format/header.ts'
import { checkE2bAlignment } from '../../src/format/header-validate.ts'
import { resolve } from '../../src/format/mapping.ts'
import { type CodecName, NIL_BUILD_ID } from '../../src/format/types.ts'
import type { Counter } from '../../src/obs/metrics.ts'
import { ReadMetrics } from '../../src/read/metrics.ts'
import { openStoredBuildFile } from '../../src/read/open.ts'
import { dataObjectName } from '../../src/format/layout.ts'
import { verifyStoredHeader } from '../../src/read/verify-stored.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import { uploadBuild } from '../../src/upload/build-upload.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'

const K4 = 4096
const MiB = 1024 * 1024

let dir: string
let store: FsStore
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-zero-push-'))
  store = await FsStore.open(join(dir, 'bucket'))
})
after(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

let fileNo = 0
async function fileOf(bytes: Uint8Array): Promise<string> {
  const path = join(dir, `src${fileNo++}`)
  await writeFile(path, bytes)
  return path
}

const compression = (codec: CodecName) => ({ default: { codec, frameSize: 256 * 1024 } })

async function push(path: string, codec: CodecName, extra: { parent?: string; dirty?: { start: number; end: number }[]; keepZeros?: boolean } = {}): Promise<{ id: string; header: Header }> {
  const id = randomUUID()
  const headers = await uploadBuild({
    store,
    buildId: id,
    parent: extra.parent,
    files: { rootfs: path },
    dirty: extra.dirty ? { rootfs: extra.dirty } : undefined,
    useCase: 'build',
    compression: compression(codec),
    blockSize: { rootfs: K4 },
    keepZeros: extra.keepZeros,
  })
  return { id, header: headers.get('rootfs')! }
}

/** Whole file and ranges that start and end inside holes and data, each compared with the model. */
async function readBack(id: string, model: Buffer): Promise<ReadMetrics> {
  const metrics = new ReadMetrics()
  const f = await openStoredBuildFile({ store, buildId: id, kind: 'rootfs', metrics })
  try {
    assert.equal(f.size, model.byteLength)
    assert.ok(Buffer.from(await f.read(0, model.byteLength)).equals(model), 'the whole file reads back byte-exact')
    let seed = 7
    for (let i = 0; i < 40; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      const offset = seed % model.byteLength
      const length = 1 + (seed % Math.min(300 * 1024, model.byteLength - offset))
      assert.ok(Buffer.from(await f.read(offset, length)).equals(model.subarray(offset, offset + length)), `range ${offset}+${length}`)
    }
  } finally {
    await f.close()
  }
  return metrics
}

async function verifyOk(id: string, header: Header): Promise<void> {
  const report = await verifyStoredHeader(store, 'rootfs', header)
  assert.deepEqual(report.failures, [], `verify of ${id}`)
  for (const l of report.layers) assert.ok(l.sha256 === 'ok' || l.sha256 === 'partial-table', `${l.object}: SHA-256 ${l.sha256}`)
}

/** A counter's value summed over its labels. */
async function total(c: Counter<string>): Promise<number> {
  return (await c.get()).values.reduce((n, v) => n + v.value, 0)
}

const holeBytes = (h: Header) => h.mappings.filter((m) => m.buildId === NIL_BUILD_ID).reduce((n, m) => n + m.length, 0)

describe('push leaves zero blocks out', () => {
  for (const codec of ['zstd', 'lz4', 'none'] as const) {
    test(`${codec}: ~45% zero pages store >= 40% fewer bytes, read back byte-exact, holes never fetched, verify passes`, async () => {
      const src = new VmDataGenerator(21, 45).next(24 * MiB + 3 * K4)
      const path = await fileOf(src)
      const kept = await push(path, codec, { keepZeros: true })
      const elided = await push(path, codec)
      const info = (h: Header) => h.builds.get(h.buildId)
      const object = (id: string) => store.stat(dataObjectName(id, 'rootfs', codec))
      const before = (await object(kept.id))!
      const after = (await object(elided.id))!
      assert.equal(info(kept.header)?.fileSize ?? src.byteLength, src.byteLength)
      const stored = info(elided.header)?.fileSize ?? after.size
      assert.ok(stored <= 0.6 * src.byteLength, `uncompressed bytes stored: ${stored} of ${src.byteLength}`)
      assert.ok(after.size < before.size, `object bytes: ${after.size} with holes, ${before.size} without`)
      if (codec === 'none') assert.ok(after.size <= 0.6 * before.size, `raw object: ${after.size} of ${before.size}`)
      // e2b's uncompressed-size is the stored size; like e2b, a raw object carries none (its size is its own).
      assert.equal(after.metadata['uncompressed-size'], codec === 'none' ? undefined : String(stored))
      assert.equal(holeBytes(elided.header) + stored, src.byteLength)
      checkE2bAlignment(elided.header)

      const metrics = await readBack(elided.id, src)
      assert.ok((await total(metrics.holeBytes)) >= holeBytes(elided.header), 'every hole byte was answered as zeros')
      const fetched = await total(metrics.bytesFetched)
      assert.ok(fetched <= after.size, `bytes fetched ${fetched} <= object size ${after.size}: no hole was fetched`)
      await verifyOk(elided.id, elided.header)
    })
  }

  for (const codec of ['zstd', 'none'] as const) {
    test(`${codec}: an all-zero file stores an empty object; its header maps everything to the nil build`, async () => {
      const path = await fileOf(Buffer.alloc(2 * MiB))
      const { id, header } = await push(path, codec)
      assert.deepEqual(
        header.mappings.map((m) => m.buildId),
        [NIL_BUILD_ID],
      )
      assert.equal((await store.stat(dataObjectName(id, 'rootfs', codec)))?.size, 0)
      await readBack(id, Buffer.alloc(2 * MiB))
      await verifyOk(id, header)
    })
  }
})

describe('a child', () => {
  for (const codec of ['zstd', 'none'] as const) {
    test(`regression: a dirty block of zeros in a ${codec} child shadows its parent (reads zeros, not the parent's bytes); odd sizes stay 4 KiB-aligned`, async () => {
      // The parent has no zero page at all; its size is not a multiple of 4 KiB.
      const size = 3 * MiB + 100
      const parentBytes = randomBytes(size)
      const parent = await push(await fileOf(parentBytes), codec)
      assert.equal(holeBytes(parent.header), 0)
      // The child dirties [0, 64K) with zeros in its second half, [1M, 1M + 8K) all zeros, and the
      // unaligned tail all zeros (its last 100 bytes are no whole page: stored, not a hole).
      const dirty = [
        { start: 0, end: 64 * 1024 },
        { start: MiB, end: MiB + 2 * K4 },
        { start: 3 * MiB - K4, end: size },
      ]
      const diff = Buffer.concat([Buffer.concat([randomBytes(32 * 1024), Buffer.alloc(32 * 1024)]), Buffer.alloc(2 * K4), Buffer.alloc(K4 + 100)])
      const model = Buffer.from(parentBytes)
      let off = 0
      for (const r of dirty) {
        diff.copy(model, r.start, off, off + (r.end - r.start))
        off += r.end - r.start
      }
      const child = await push(await fileOf(diff), codec, { parent: parent.id, dirty })
      for (const at of [32 * 1024, MiB, MiB + K4, 3 * MiB - K4]) {
        assert.equal(resolve(child.header, at).buildId, NIL_BUILD_ID, `offset ${at} is a nil mapping in the child`)
      }
      assert.equal(resolve(child.header, size - 1).buildId, child.id, 'the partial last page is stored')
      assert.equal(child.header.builds.get(child.id)?.fileSize ?? (await store.stat(dataObjectName(child.id, 'rootfs', 'none')))?.size, 32 * 1024 + 100)
      checkE2bAlignment(child.header)
      checkE2bAlignment(parent.header)
      await readBack(child.id, model)
      await verifyOk(child.id, child.header)
    })
  }
})
