/**
 * Cached bytes stay verified: the chunk cache checks what it hands a reader against the CRCs
 * recorded when the bytes were written (once per page after an open), repairs a data file cut
 * short, never trusts a broken presence record, and keys cached content by build id AND the content
 * the header promises. Real files, a real filesystem object store, real codecs; every byte read is
 * compared with the source.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open as openFile, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { BuildStatusBoard } from '../../src/cluster/build-status.ts'
import type { Header } from '../../src/format/header.ts'
import { dataObjectName } from '../../src/format/layout.ts'
import { singleLayerHeader } from '../../src/format/mapping.ts'
import type { BuildId, CodecName } from '../../src/format/types.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { createRegistry, type Registry } from '../../src/obs/metrics.ts'
import { BuildReader } from '../../src/read/build-reader.ts'
import { ChunkCache } from '../../src/read/chunk-cache.ts'
import { FrameFetcher } from '../../src/read/fetcher.ts'
import { ReadMetrics } from '../../src/read/metrics.ts'
import { PresenceMap } from '../../src/read/presence.ts'
import { StorageSource } from '../../src/read/source.ts'
import { FrameStore } from '../../src/read/sources/frame-store.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import { ResumedFile } from '../../src/switchover/resumed-file.ts'
import { CountingSource, frameData, KiB, MiB, newId, sleep, vmData, withTmp } from './helpers.ts'

const SIZE = 1 * MiB
const FRAME = 256 * KiB

interface Fixture {
  dir: string
  store: FsStore
  storage: CountingSource
  reg: Registry
  metrics: ReadMetrics
  id: BuildId
  plain: Buffer
  header: Header
}

async function fixture(dir: string, seed = 1): Promise<Fixture> {
  const store = await FsStore.open(join(dir, 'bucket'))
  const id = newId()
  const reg = createRegistry()
  const { plain, header } = await publish(store, id, vmData(SIZE, seed), 'zstd', FRAME)
  return { dir, store, storage: new CountingSource(new StorageSource(store)), reg, metrics: new ReadMetrics(reg), id, plain, header }
}

/** Store `plain` as build `id`'s memfile (replacing what was there) and return a header that describes it. */
async function publish(store: FsStore, id: BuildId, plain: Buffer, codec: CodecName, frameSize: number, incomplete = false) {
  const framed = await frameData(codec, plain, frameSize)
  await store.delete(dataObjectName(id, 'memfile', codec)).catch(() => {})
  await store.put(dataObjectName(id, 'memfile', codec), framed.stored)
  const sha256 = createHash('sha256').update(plain).digest()
  const header = singleLayerHeader({ buildId: id, blockSize: 4 * KiB, incomplete, info: { buildId: id, fileSize: plain.length, sha256, frames: framed.table } })
  return { plain, header }
}

function openCache(f: Fixture): Promise<ChunkCache> {
  return ChunkCache.open({ dir: join(f.dir, 'cache'), maxBytes: 1024 * MiB, fetcher: new FrameFetcher({ sources: [f.storage], metrics: f.metrics }), metrics: f.metrics })
}

/** Read [offset, offset + length) of the build through a fresh BuildReader over `cache`. */
async function readVia(cache: ChunkCache, header: Header, offset = 0, length = header.size, signal?: AbortSignal): Promise<Buffer> {
  const reader = await BuildReader.open({ header, kind: 'memfile', cache })
  try {
    return Buffer.from(await reader.read(offset, length, signal))
  } finally {
    await reader.close()
  }
}

/** Fill the cache with the whole build, then close it (as a node that stops). */
async function fillAndClose(f: Fixture): Promise<void> {
  const cache = await openCache(f)
  assert.ok((await readVia(cache, f.header)).equals(f.plain))
  await cache.close()
}

/** The cache's data and record files of the build (wherever the layout puts them). */
async function cacheFiles(f: Fixture): Promise<{ data: string; map: string }> {
  const root = join(f.dir, 'cache')
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (e.isFile() && e.name === 'memfile.data' && e.parentPath.includes(f.id)) return { data: join(e.parentPath, e.name), map: join(e.parentPath, 'memfile.map') }
  }
  throw new Error(`no cached memfile of ${f.id} under ${root}`)
}

async function flip(path: string, at: number, n = 16): Promise<void> {
  const bytes = await readFile(path)
  for (let i = at; i < at + n; i++) bytes[i] ^= 0x5a
  await writeFile(path, bytes)
}

async function metric(reg: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = reg.getSingleMetric(name)
  if (!m) return 0
  const values = (await m.get()).values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
  return values.reduce((s, v) => s + v.value, 0)
}

const slice = (b: Buffer, off: number, len: number) => b.subarray(off, off + len)

test('regression: chunk cache rot is served as data after a restart (item 1)', async () => {
  await withTmp(async (dir) => {
    const f = await fixture(dir)
    await fillAndClose(f)
    assert.equal(f.storage.calls, SIZE / FRAME)
    const { data } = await cacheFiles(f)
    // 16 bytes inside one page of frame 1 (an aligned 4 KiB read finds them), and 16 bytes across a
    // page boundary of frame 2 (an unaligned read across it finds them).
    const a = 300 * KiB + 100
    const b = 600 * KiB - 8
    await flip(data, a)
    await flip(data, b)
    const cache = await openCache(f)
    const page = a - (a % (4 * KiB))
    assert.ok((await readVia(cache, f.header, page, 4 * KiB)).equals(slice(f.plain, page, 4 * KiB)), 'the aligned page read is the source')
    assert.ok((await readVia(cache, f.header, b - 1000, 5000)).equals(slice(f.plain, b - 1000, 5000)), 'the unaligned read is the source')
    assert.ok((await readVia(cache, f.header)).equals(f.plain), 'the whole file is the source')
    assert.equal(f.storage.calls, SIZE / FRAME + 2, 'exactly the two frames with rotten pages were fetched again')
    assert.equal(await metric(f.reg, 'snapswarm_chunk_cache_corrupt_pages_total', { reason: 'mismatch' }), 3, 'one page, then two across a boundary')
    await cache.close()
    // The repair was recorded: a third open reads everything from the cache, all of it right.
    const again = await openCache(f)
    assert.ok((await readVia(again, f.header)).equals(f.plain))
    assert.equal(f.storage.calls, SIZE / FRAME + 2)
    await again.close()
  })
})

test('regression: a truncated chunk cache data file stalls reads of the lost range (item 8)', async () => {
  await withTmp(async (dir) => {
    const f = await fixture(dir)
    await fillAndClose(f)
    const { data } = await cacheFiles(f)
    await truncate(data, 400 * KiB + 123) // frame 1 cut mid-page, frames 2 and 3 gone
    const cache = await openCache(f)
    // A bounded deadline, far below the old 30 s source timeout: the repair is a refetch, not a wait.
    const got = await readVia(cache, f.header, 0, SIZE, AbortSignal.timeout(10_000))
    assert.ok(got.equals(f.plain))
    assert.equal(f.storage.calls, SIZE / FRAME + 3, 'frames 1-3 refetched, frame 0 still cached')
    assert.ok((await metric(f.reg, 'snapswarm_chunk_cache_corrupt_pages_total', { reason: 'truncated' })) > 0)
    assert.equal((await stat(data)).size, SIZE)
    await cache.close()
  })
})

test('regression: a chunk cache data file cut short while open is repaired on the next read (item 8)', async () => {
  await withTmp(async (dir) => {
    const f = await fixture(dir)
    const cache = await openCache(f)
    const reader = await BuildReader.open({ header: f.header, kind: 'memfile', cache })
    try {
      assert.ok(Buffer.from(await reader.read(0, SIZE)).equals(f.plain))
      // Readers get verified bytes before they are written: wait until every page is written and present.
      for (const deadline = Date.now() + 10_000; cache.bytes < SIZE; await sleep(5)) assert.ok(Date.now() < deadline, 'frames written')
      await truncate((await cacheFiles(f)).data, 700 * KiB) // every page is checked and present: the hot path
      const calls = f.storage.calls
      const tail = Buffer.from(await reader.read(900 * KiB, 8 * KiB, AbortSignal.timeout(10_000)))
      assert.ok(tail.equals(slice(f.plain, 900 * KiB, 8 * KiB)))
      assert.ok(Buffer.from(await reader.read(0, SIZE, AbortSignal.timeout(10_000))).equals(f.plain))
      assert.equal(f.storage.calls, calls + 2, 'frame 2 (cut mid-frame) and frame 3 were fetched again')
    } finally {
      await reader.close()
      await cache.close()
    }
  })
})

test('regression: a corrupt presence record is trusted (item 1)', async () => {
  await withTmp(async (dir) => {
    const f = await fixture(dir)
    const cache = await openCache(f)
    // Frames 0 and 2 cached; frame 1's pages (64-127) are holes in the sparse data file.
    assert.ok((await readVia(cache, f.header, 0, 4 * KiB)).equals(slice(f.plain, 0, 4 * KiB)))
    assert.ok((await readVia(cache, f.header, 512 * KiB, 4 * KiB)).equals(slice(f.plain, 512 * KiB, 4 * KiB)))
    await cache.close()
    const { map } = await cacheFiles(f)
    // Rot in the record: the bits of frame 1's pages (bytes 8-15 of the bitmap after a 16-byte header) set.
    const record = await readFile(map)
    record.fill(0xff, 16 + 8, 16 + 16)
    await writeFile(map, record)
    const reopened = await openCache(f)
    assert.equal(reopened.bytes, 0, 'a record that fails its own checksum counts as nothing present')
    assert.ok((await readVia(reopened, f.header)).equals(f.plain), 'never the holes of the data file')
    await reopened.close()
    // A record cut short: nothing present either, and no crash.
    const cut = await readFile(map)
    await writeFile(map, cut.subarray(0, cut.length - 7))
    const third = await openCache(f)
    assert.equal(third.bytes, 0)
    assert.ok((await readVia(third, f.header)).equals(f.plain))
    await third.close()
  })
})

test('regression: cache directories of the older layout (build id only) are removed at start, never served (item 2)', async () => {
  await withTmp(async (dir) => {
    const f = await fixture(dir)
    // The layout before content keys: {cache}/{buildId}/memfile.data + a valid version-1 record saying
    // page 0 is present. Its bytes are not the source's.
    const old = join(dir, 'cache', f.id)
    await mkdir(old, { recursive: true })
    await writeFile(join(old, 'memfile.data'), Buffer.alloc(4 * KiB, 0xee))
    const v1 = Buffer.alloc(16 + 1)
    v1.writeUInt32LE(0x4d505353, 0)
    v1.writeUInt32LE(1, 4)
    v1.writeUInt32LE(4 * KiB, 8)
    v1.writeUInt32LE(8, 12)
    v1[16] = 1
    await writeFile(join(old, 'memfile.map'), v1)
    const cache = await openCache(f)
    await assert.rejects(stat(old), { code: 'ENOENT' })
    assert.ok((await readVia(cache, f.header, 0, 4 * KiB)).equals(slice(f.plain, 0, 4 * KiB)))
    await cache.close()
  })
})

test('regression: a header with another digest is served from cached blocks of the old one (item 2, readers)', async () => {
  await withTmp(async (dir) => {
    const f = await fixture(dir)
    await fillAndClose(f)
    // The same build id now promises other content (its source was re-framed): same size, same geometry.
    const other = await publish(f.store, f.id, vmData(SIZE, 99), 'zstd', FRAME)
    assert.ok(!other.plain.equals(f.plain))
    const cache = await openCache(f)
    assert.ok((await readVia(cache, other.header)).equals(other.plain), 'the new header reads its own content')
    // Both are cached side by side, each under its own key; the old header still reads the old content
    // from its blocks (no fetch: storage now holds only the new content).
    const calls = f.storage.calls
    assert.ok((await readVia(cache, f.header)).equals(f.plain))
    assert.equal(f.storage.calls, calls)
    await cache.close()
  })
})

test('a pending and a final header that promise the same content share the cache across geometries; a legacy header does not', async () => {
  await withTmp(async (dir) => {
    const f = await fixture(dir)
    // Pending: LZ4 in 1 MiB frames (the origin's local copy); final: zstd in 256 KiB frames. Same SHA-256.
    const pending = await publish(f.store, f.id, f.plain, 'lz4', 1 * MiB, true)
    const cache = await openCache(f)
    assert.ok((await readVia(cache, pending.header)).equals(f.plain))
    const calls = f.storage.calls
    assert.ok((await readVia(cache, f.header)).equals(f.plain))
    assert.equal(f.storage.calls, calls, 'the switchover keeps the cache')
    // A header without a SHA-256 cannot be compared: its blocks are keyed by its own bytes.
    const zeros = singleLayerHeader({ buildId: f.id, blockSize: 4 * KiB, info: { ...f.header.builds.get(f.id)!, sha256: new Uint8Array(32) } })
    assert.ok((await readVia(cache, zeros)).equals(f.plain))
    assert.equal(f.storage.calls, calls + SIZE / FRAME, 'fetched under its own key')
    await cache.close()
  })
})

test('junk where cache files belong (directories, temp files, strangers) never stops an open nor is read as data', async () => {
  await withTmp(async (dir) => {
    const f = await fixture(dir)
    await fillAndClose(f)
    const { data, map } = await cacheFiles(f)
    await rm(data)
    await mkdir(data) // a directory where the data file was
    await writeFile(`${map}.tmp`, 'a crashed save')
    await writeFile(join(dir, 'cache', 'stranger'), 'not a cache directory')
    const cache = await openCache(f)
    assert.equal(cache.bytes, 0)
    assert.deepEqual(await readdir(join(dir, 'cache')), [], 'the build file went with its data, the stranger too')
    assert.ok((await readVia(cache, f.header)).equals(f.plain))
    await cache.close()
  })
})

test('regression: the frame store serves a frame of the old content to a header with another digest (item 2, readers)', async () => {
  await withTmp(async (dir) => {
    // Incompressible data: 16 flipped bytes leave every compressed frame the same size, so both
    // contents have the same frame table and only the bytes (and the SHA-256) tell them apart.
    const store = await FsStore.open(join(dir, 'bucket'))
    const id = newId()
    const a = randomBytes(SIZE)
    const b = Buffer.from(a)
    for (let i = 0; i < 16; i++) b[300 * KiB + i] ^= 0x5a
    const frames = await FrameStore.open({ dir: join(dir, 'frames'), maxBytes: 1 << 30 })
    const storage = new CountingSource(new StorageSource(store))
    const cache = await ChunkCache.open({ dir: join(dir, 'cache'), maxBytes: 1 << 30, fetcher: new FrameFetcher({ sources: [frames, storage] }) })
    const first = await publish(store, id, a, 'zstd', FRAME)
    assert.ok((await readVia(cache, first.header)).equals(a))
    await frames.idle() // every verified frame is in the frame store now
    const second = await publish(store, id, b, 'zstd', FRAME)
    assert.deepEqual(second.header.builds.get(id)!.frames.frames, first.header.builds.get(id)!.frames.frames, 'same geometry')
    assert.ok((await readVia(cache, second.header)).equals(b), 'the new header reads its own content')
    assert.equal(storage.calls, 2 * SIZE / FRAME, 'every frame of the new content came from storage, none from the frame store')
    await frames.idle()
    // The frame store now holds the new content only (a peer asking by range gets the content last read).
    const reopened = await FrameStore.open({ dir: join(dir, 'frames'), maxBytes: 1 << 30 })
    assert.equal(reopened.index.bytes, (await stat(join(dir, 'bucket', dataObjectName(id, 'memfile', 'zstd')))).size)
    await cache.close()
  })
})

test('the presence record round-trips every present page and its CRC (full, partial and empty CRC chunks)', async () => {
  await withTmp(async (dir) => {
    const map = new PresenceMap()
    let x = 7
    const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0)
    const want = new Map<number, number>()
    const put = (first: number, n: number) => {
      const crcs = Uint32Array.from({ length: n }, next)
      map.setRange(first, crcs)
      for (const [i, c] of crcs.entries()) want.set(first + i, c)
    }
    put(0, 2048) // two full chunks
    put(5000, 3) // a partial chunk
    put(4090, 10) // across a chunk boundary
    put(70_000, 1) // far away, alone
    assert.equal(map.drop(1000, 1002), 2)
    want.delete(1000)
    want.delete(1001)
    await map.save(join(dir, 'm'), map.snapshot())
    const loaded = await PresenceMap.load(join(dir, 'm'))
    assert.equal(loaded.count, want.size)
    for (const [page, crc] of want) assert.equal(loaded.crcOf(page), crc, `page ${page}`)
    for (const page of [1000, 1001, 2048, 4089, 4100, 69_999, 70_001]) assert.ok(!loaded.has(page), `page ${page} absent`)
    assert.ok(!loaded.isChecked(0), 'nothing loaded counts as checked')
  })
})

test('regression: a disk error reading the chunk cache of a pending build waits on the switchover and blames the origin (item 8)', async () => {
  await withTmp(async (dir) => {
    const f = await fixture(dir)
    const pending = await publish(f.store, newId(), f.plain, 'zstd', FRAME, true)
    const id = pending.header.buildId
    const cache = await openCache(f)
    const board = new BuildStatusBoard()
    board.set(id, 'pending')
    const file = await ResumedFile.open(
      {
        buildId: id,
        kind: 'memfile',
        board,
        log: silentLogger,
        openReader: (header) => BuildReader.open({ header, kind: 'memfile', cache }),
        // The final header never shows up (a long upload): a read that waited for it would hang here.
        loadFinal: (signal) => new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason))),
      },
      pending.header,
    )
    // One read of the cache file fails as a failing disk does.
    const probe = await openFile(join(dir, 'probe'), 'w')
    const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<unknown> }
    await probe.close()
    const read = proto.read
    try {
      assert.ok(Buffer.from(await file.read(0, 8 * KiB)).equals(slice(f.plain, 0, 8 * KiB)))
      await waitUntil(() => cache.bytes >= FRAME) // written: the next read of it goes to the file
      let failNext = true
      proto.read = async function (this: unknown, ...args: unknown[]) {
        if (failNext) {
          failNext = false
          throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO', errno: -5, syscall: 'read' })
        }
        return read.apply(this, args)
      }
      await assert.rejects(file.read(0, 4 * KiB, AbortSignal.timeout(5_000)), { code: 'EIO' })
      assert.ok(Buffer.from(await file.read(0, 4 * KiB)).equals(slice(f.plain, 0, 4 * KiB)), 'the next read works')
    } finally {
      proto.read = read
      await file.close()
      await cache.close()
    }
  })
})

async function waitUntil(ok: () => boolean, ms = 10_000): Promise<void> {
  for (const deadline = Date.now() + ms; !ok(); await sleep(5)) assert.ok(Date.now() < deadline, 'condition within the deadline')
}
