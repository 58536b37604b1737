/**
 * Zero blocks as holes (BENCH=zeros): a VM-like file with ~45% zero pages (4 KiB blocks: a rootfs,
 * or a memfile without huge pages) pushed twice into a filesystem bucket, with every byte kept (the
 * baseline: what snapswarm stored before holes) and with zero blocks left out. Per codec (zstd, raw):
 * - uncompressed bytes stored and object bytes, with holes vs without (target: <= 0.6 of the
 *   uncompressed bytes, i.e. >= 40% fewer);
 * - push wall time, with holes vs without;
 * - a cold sequential read of the whole file (fresh chunk cache, every byte checked against the
 *   source), with holes vs without: best of 3.
 * BENCH_ZEROS_MIB sets the file size (default 128).
 */
import { randomUUID } from 'node:crypto'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { CodecName } from '../src/format/types.ts'
import { openStoredBuildFile } from '../src/read/open.ts'
import { dataObjectName } from '../src/format/layout.ts'
import { FsStore } from '../src/storage/fs-store.ts'
import { uploadBuild } from '../src/upload/build-upload.ts'
import { VmDataGenerator } from '../src/util/vmdata.ts'
import { MiB, benchDir, bestOf, emit } from './common.ts'

const READ_STEP = 4 * MiB

interface Pushed {
  id: string
  storedU: number
  objectBytes: number
  pushSeconds: number
}

export async function zerosBench(sizeMiB = Number(process.env.BENCH_ZEROS_MIB ?? 128)): Promise<void> {
  const dir = benchDir('zeros')
  try {
    const src = new VmDataGenerator(45, 45).next(sizeMiB * MiB)
    const input = join(dir, 'rootfs.raw')
    await writeFile(input, src)
    const store = await FsStore.open(join(dir, 'bucket'))
    for (const codec of ['zstd', 'none'] as const) {
      const kept = await push(store, input, codec, true)
      const holes = await push(store, input, codec, false)
      emit(`zeros ${codec}: uncompressed bytes stored, holes vs every byte`, holes.storedU, 'B', kept.storedU, '<= 0.6')
      emit(`zeros ${codec}: object bytes stored, holes vs every byte`, holes.objectBytes, 'B', kept.objectBytes)
      emit(`zeros ${codec}: push time, holes vs every byte`, holes.pushSeconds, 's', kept.pushSeconds)
      const readKept = await bestOf(3, () => coldRead(store, kept.id, src, join(dir, 'cache')))
      const readHoles = await bestOf(3, () => coldRead(store, holes.id, src, join(dir, 'cache')))
      emit(`zeros ${codec}: cold full read, holes vs every byte`, readHoles, 's', readKept, '< 1')
    }
    await store.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function push(store: FsStore, input: string, codec: CodecName, keepZeros: boolean): Promise<Pushed> {
  const id = randomUUID()
  const t0 = performance.now()
  const headers = await uploadBuild({
    store,
    buildId: id,
    files: { rootfs: input },
    useCase: 'build',
    compression: { default: { codec } },
    blockSize: { rootfs: 4096 },
    keepZeros,
  })
  const pushSeconds = (performance.now() - t0) / 1000
  const stat = await store.stat(dataObjectName(id, 'rootfs', codec))
  if (!stat) throw new Error(`no data object for ${id}`)
  const info = headers.get('rootfs')!.builds.get(id)
  return { id, storedU: info?.fileSize ?? stat.size, objectBytes: stat.size, pushSeconds }
}

/** Seconds to read the whole file through a fresh chunk cache; every byte compared with the source. */
async function coldRead(store: FsStore, id: string, src: Buffer, cacheDir: string): Promise<number> {
  await rm(cacheDir, { recursive: true, force: true })
  const f = await openStoredBuildFile({ store, buildId: id, kind: 'rootfs', cacheDir })
  try {
    const buf = Buffer.allocUnsafe(READ_STEP)
    const t0 = performance.now()
    for (let pos = 0; pos < f.size; pos += READ_STEP) {
      const view = buf.subarray(0, Math.min(READ_STEP, f.size - pos))
      await f.readInto(view, pos)
      if (!view.equals(src.subarray(pos, pos + view.byteLength))) throw new Error(`${id}: bytes at ${pos} differ from the source`)
    }
    return (performance.now() - t0) / 1000
  } finally {
    await f.close()
    await rm(cacheDir, { recursive: true, force: true })
  }
}
