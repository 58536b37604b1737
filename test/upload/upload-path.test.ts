/**
 * The one upload path (uploadBuild) and the bucket layout, against a real filesystem bucket:
 * - a pushed build holds exactly the object names src/format/layout.ts gives (e2b's names), no claim;
 * - a prepared build (what a node's pause hands over) with a local framed copy of the upload's
 *   geometry stores that copy byte for byte; with another geometry it is framed again from the plain
 *   file; both read back byte-exact through the read path;
 * - a plain file that no longer holds what was planned fails with ERR_SOURCE_CHANGED and leaves nothing.
 */
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { resolveCompression } from '../../src/config/compression.ts'
import { blobObjectName, buildPrefix, claimObjectName, dataObjectName, headerObjectName, traceObjectName } from '../../src/format/layout.ts'
import type { CodecName } from '../../src/format/types.ts'
import { pack } from '../../src/framing/pack.ts'
import { openStoredBuildFile } from '../../src/read/open.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import { type PreparedBuild, uploadBuild } from '../../src/upload/build-upload.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'

const K4 = 4096
const FRAME = 256 * 1024
const ID = '0f8e6c7a-1b2c-4d5e-8f90-a1b2c3d4e5f6'

let dir: string
let store: FsStore
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-upload-path-'))
  store = await FsStore.open(join(dir, 'bucket'))
})
after(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest()

async function readBack(buildId: string, expected: Uint8Array): Promise<void> {
  const f = await openStoredBuildFile({ store, buildId, kind: 'rootfs' })
  try {
    assert.equal(f.size, expected.byteLength)
    assert.ok(Buffer.from(await f.read(0, f.size)).equals(Buffer.from(expected)), 'every byte read back equals the source')
  } finally {
    await f.close()
  }
}

test('bucket layout: the names are e2b’s, and a pushed build holds exactly those the layout gives (no claim left)', async () => {
  assert.equal(dataObjectName(ID, 'memfile', 'zstd'), `${ID}/memfile.zstd`)
  assert.equal(dataObjectName(ID, 'rootfs', 'none'), `${ID}/rootfs.ext4`)
  assert.equal(headerObjectName(ID, 'rootfs'), `${ID}/rootfs.ext4.header`)
  assert.equal(blobObjectName(ID, 'metadata'), `${ID}/metadata.json`)
  assert.equal(blobObjectName(ID, 'snapfile'), `${ID}/snapfile`)
  assert.equal(traceObjectName(ID, 'memfile'), `${ID}/memfile.prefetch`)
  assert.equal(claimObjectName(ID), `${ID}/snapswarm.claim`)

  const id = randomUUID()
  const paths = { memfile: join(dir, 'mem'), rootfs: join(dir, 'root'), snapfile: join(dir, 'snap'), metadata: join(dir, 'meta.json') }
  await writeFile(paths.memfile, new VmDataGenerator(1, 30).next(4 * 1024 * 1024))
  await writeFile(paths.rootfs, new VmDataGenerator(2, 30).next(64 * K4))
  await writeFile(paths.snapfile, 'vm state')
  await writeFile(paths.metadata, '{"k":1}')
  await uploadBuild({ store, buildId: id, files: paths, useCase: 'build', compression: { default: { codec: 'lz4' }, rootfs: { codec: 'none' } } })
  const expected = [dataObjectName(id, 'memfile', 'lz4'), headerObjectName(id, 'memfile'), dataObjectName(id, 'rootfs', 'none'), headerObjectName(id, 'rootfs'), blobObjectName(id, 'snapfile'), blobObjectName(id, 'metadata')]
  assert.deepEqual((await store.list(buildPrefix(id))).sort(), expected.sort())
  assert.deepEqual(Buffer.from(await store.get(blobObjectName(id, 'metadata'))).toString(), '{"k":1}')
})

/** A source file, its local framed copy (as a pause frames it) and a prepared build uploading it with `codec`. */
async function prepared(id: string, name: string, src: Uint8Array, localCodec: CodecName, uploadCodec: CodecName, expectSha = sha256(src)) {
  const path = join(dir, name)
  await writeFile(path, src)
  const local = await pack({ input: path, outDir: join(dir, `${name}.framed`), kind: 'rootfs', buildId: id, codec: localCodec, level: 1, frameSize: FRAME, blockSize: K4, workers: 1, elideZeros: true })
  const info = local.header.builds.get(local.header.buildId)!
  const settings = resolveCompression({ default: { codec: uploadCodec, frameSize: FRAME } }, 'rootfs', 'pause', K4)
  const plain = await open(path, 'r')
  const build: PreparedBuild = {
    claim: { writer: 'test', digest: name },
    files: [{
      kind: 'rootfs',
      plan: async () => ({
        parent: null,
        blockSize: K4,
        settings,
        source: { plain, path, expect: { size: src.byteLength, sha256: expectSha }, zeroBlock: K4, storedSize: info.fileSize, framed: { dataPath: local.dataPath, info, holes: local.holes } },
      }),
    }],
    blobs: [],
  }
  return { build, localPath: local.dataPath, close: () => plain.close() }
}

async function uploadAndClose(id: string, p: { build: PreparedBuild; close: () => Promise<void> }): Promise<void> {
  try {
    await uploadBuild({ store, buildId: id, prepared: p.build })
  } finally {
    await p.close()
  }
}

test('prepared upload: a local framed copy with the upload’s geometry is stored byte for byte, and reads back exact', async () => {
  const src = new VmDataGenerator(3, 40).next(40 * K4 + 123)
  const id = randomUUID()
  const p = await prepared(id, 'same', src, 'zstd', 'zstd')
  await uploadAndClose(id, p)
  assert.ok(Buffer.from(await store.get(dataObjectName(id, 'rootfs', 'zstd'))).equals(await readFile(p.localPath)), 'the stored object is the local copy')
  assert.deepEqual((await store.list(buildPrefix(id))).sort(), [dataObjectName(id, 'rootfs', 'zstd'), headerObjectName(id, 'rootfs')].sort())
  await readBack(id, src)
})

test('prepared upload: a local copy of another geometry is framed again from the plain file, and reads back exact', async () => {
  const src = new VmDataGenerator(4, 40).next(70 * K4)
  const id = randomUUID()
  const p = await prepared(id, 'other', src, 'lz4', 'zstd')
  await uploadAndClose(id, p)
  assert.deepEqual((await store.list(buildPrefix(id))).sort(), [dataObjectName(id, 'rootfs', 'zstd'), headerObjectName(id, 'rootfs')].sort())
  await readBack(id, src)
})

test('prepared upload: a plain file that no longer holds what was planned fails ERR_SOURCE_CHANGED and leaves nothing', async () => {
  const src = new VmDataGenerator(5, 40).next(30 * K4)
  const id = randomUUID()
  const p = await prepared(id, 'changed', src, 'lz4', 'zstd', sha256(Buffer.from('other content')))
  try {
    await assert.rejects(uploadBuild({ store, buildId: id, prepared: p.build }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_SOURCE_CHANGED')
      assert.match(err.message, /changed during the upload: expected 122880 bytes/)
      return true
    })
  } finally {
    await p.close()
  }
  assert.deepEqual(await store.list(buildPrefix(id)), [], 'no object and no claim left')
})
