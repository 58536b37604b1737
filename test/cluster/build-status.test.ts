/**
 * The status board stays bounded in a long-running node (review item): entries nobody used for a
 * while expire, the least recently used go first past the cap, and a build with an open file keeps
 * its state and holders, so its failed-upload error and its proactive switchover still work. The
 * open files are real ResumedFiles over a real chunk cache and fs object storage.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { test } from 'node:test'
import { BuildStatusBoard, peersCanServe } from '../../src/cluster/build-status.ts'
import type { Header } from '../../src/format/header.ts'
import { dataObjectName } from '../../src/format/layout.ts'
import { singleLayerHeader } from '../../src/format/mapping.ts'
import type { BuildId } from '../../src/format/types.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { BuildReader } from '../../src/read/build-reader.ts'
import { ChunkCache } from '../../src/read/chunk-cache.ts'
import { FrameFetcher } from '../../src/read/fetcher.ts'
import { StorageSource } from '../../src/read/source.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import { ResumedFile, UploadFailedError } from '../../src/switchover/resumed-file.ts'
import { waitFor } from '../p2p/helpers.ts'
import { frameData, KiB, MiB, newId, sleep, vmData, withTmp } from '../read/helpers.ts'

const TTL = 100
/** Longer for the test with real files: a close and the lookup after it must fit well inside it. */
const FILE_TTL = 300

test('entries nobody uses expire after the TTL; the least recently used go first past the cap', async () => {
  const board = new BuildStatusBoard({ ttlMs: TTL, maxBuilds: 3 })
  const [a, b, c, d, e, f] = Array.from({ length: 6 }, newId)
  board.set(a, 'failed')
  const unwatch = board.watch(a, () => {})
  board.set(b, 'pending')
  board.set(c, 'uploaded')
  board.set(d, 'pending')
  // Four builds, cap three: B (least recently used, unwatched) goes; A is watched, so it stays.
  assert.equal(board.size, 3)
  assert.equal(board.get(a), 'failed')
  assert.equal(board.get(b), undefined)
  assert.equal(board.get(c), 'uploaded') // used: now the most recent
  board.set(e, 'pending') // evicts D, not C
  assert.equal(board.get(d), undefined)
  assert.equal(board.get(c), 'uploaded')
  assert.equal(board.get(e), 'pending')

  await sleep(3 * TTL)
  board.addHolder(f, 'peer-f') // any use sweeps
  assert.equal(board.size, 2, 'C and E expired; A (watched) and F remain')
  assert.equal(board.get(c), undefined)
  assert.equal(board.get(e), undefined)
  assert.equal(board.get(a), 'failed')
  assert.deepEqual(board.holdersOf(f), ['peer-f'])

  // Unwatched, A expires a TTL after its last use, like any other build.
  unwatch()
  await sleep(3 * TTL)
  assert.equal(board.get(a), undefined)
  assert.deepEqual(board.holdersOf(f), [])
  assert.equal(board.size, 0)
})

test('a build with an open file keeps its state and holders: failure is reported at once, the switchover still happens', async () => {
  await withTmp(async (dir) => {
    const store = await FsStore.open(join(dir, 'bucket'))
    const cache = await ChunkCache.open({ dir: join(dir, 'cache'), maxBytes: 64 * MiB, fetcher: new FrameFetcher({ sources: [new StorageSource(store)] }) })
    const board = new BuildStatusBoard({ ttlMs: FILE_TTL })
    const files: ResumedFile[] = []
    try {
      const plain = vmData(256 * KiB, 7)
      const build = async () => {
        const id = newId()
        const framed = await frameData('zstd', plain, 64 * KiB)
        await store.put(dataObjectName(id, 'memfile', 'zstd'), framed.stored)
        const info = { buildId: id, fileSize: plain.length, sha256: createHash('sha256').update(plain).digest(), frames: framed.table }
        const pending = singleLayerHeader({ buildId: id, blockSize: 4096, info, incomplete: true })
        return { id, pending, final: singleLayerHeader({ buildId: id, blockSize: 4096, info }) }
      }
      const switches: BuildId[] = []
      const open = async (id: BuildId, pending: Header, final: Header) => {
        const file = await ResumedFile.open(
          {
            buildId: id,
            kind: 'memfile',
            board,
            log: silentLogger,
            openReader: (header) => BuildReader.open({ header, kind: 'memfile', cache }),
            loadFinal: async () => final,
            onSwitch: (from) => switches.push(from.buildId),
          },
          pending,
        )
        files.push(file)
        return file
      }
      const x = await build() // will switch over
      const z = await build() // will fail
      const other = newId() // never opened
      board.set(x.id, 'pending')
      board.addHolder(x.id, 'peer-x')
      board.set(z.id, 'pending')
      board.set(other, 'failed')
      const fx = await open(x.id, x.pending, x.final)
      const fz = await open(z.id, z.pending, z.final)
      assert.deepEqual(Buffer.from(await fx.read(0, 8192)), plain.subarray(0, 8192))
      board.set(z.id, 'failed')

      await sleep(3 * FILE_TTL)
      assert.equal(board.get(other), undefined, 'a build nobody has open expires')
      assert.equal(board.get(x.id), 'pending')
      assert.deepEqual(board.holdersOf(x.id), ['peer-x'], 'the holder that serves an open pending build is kept')
      // Still known as failed: a clear error at once, not a read from peers then a bounded poll.
      await assert.rejects(fz.read(0, 4096), UploadFailedError)

      await sleep(3 * FILE_TTL)
      board.set(x.id, 'uploaded')
      await waitFor(() => !fx.pending, 3000, 'the proactive switchover')
      assert.deepEqual(switches, [x.id])
      assert.deepEqual(Buffer.from(await fx.read(65536, 4096)), plain.subarray(65536, 65536 + 4096))

      // Closed, the build is an ordinary entry again and expires a TTL later.
      await fz.close()
      assert.equal(board.get(z.id), 'failed')
      await sleep(3 * FILE_TTL)
      assert.equal(board.get(z.id), undefined)
    } finally {
      await Promise.allSettled(files.map((f) => f.close()))
      await cache.close()
      await store.close()
    }
  })
})

test('regression: readableFrom listed peers that hold only frames (cached) of a build whose header nobody can serve', () => {
  // A pending origin serves header and frames; frame holders count only when the header is in storage.
  assert.equal(peersCanServe([{ state: 'pending' }], false), true)
  assert.equal(peersCanServe([{ state: 'cached' }, { state: 'cached' }], false), false)
  assert.equal(peersCanServe([{ state: 'cached' }], true), true)
  assert.equal(peersCanServe([{ state: 'uploaded' }], true), true)
  assert.equal(peersCanServe([{ state: 'failed' }], true), false)
  assert.equal(peersCanServe([], true), false)
})

test('regression: a holder that left the cluster was still offered as a place to read a build from', () => {
  const board = new BuildStatusBoard()
  const a = crypto.randomUUID()
  const b = crypto.randomUUID()
  board.addHolder(a, 'peerA')
  board.addHolder(a, 'peerB')
  board.addHolder(b, 'peerA')
  board.dropHolder('peerA')
  assert.deepEqual(board.holdersOf(a), ['peerB'])
  assert.deepEqual(board.holdersOf(b), [])
})
