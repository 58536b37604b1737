/**
 * Issue 2 figures: framed zstd-3 compression (2 workers) vs `zstd -3 -T2`, framed decompression vs
 * `zstd -d`, and the compression-ratio cost of 2 MiB frames vs whole-file zstd -3, on VM-like data.
 */
import { statSync } from 'node:fs'
import { open, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { getCodec } from '../src/format/codec.ts'
import { pack } from '../src/pack/pack.ts'
import { randomBuildId } from '../src/format/uuid.ts'
import { writeVmData } from '../src/util/vmdata.ts'
import { MB, MiB, benchDir, bestOf, emit, timeCommand } from './common.ts'

export async function formatBench(sizeMiB = Number(process.env.BENCH_FORMAT_MIB ?? 256)): Promise<void> {
  const dir = benchDir('format')
  const input = join(dir, 'memfile.raw')
  const size = sizeMiB * MiB
  await writeVmData(input, size, 42)
  const whole = join(dir, 'whole.zst')

  const cliSecs = await bestOf(3, () => timeCommand('zstd', ['-q', '-f', '-3', '-T2', input, '-o', whole]))
  let packed = { dataPath: '', compressed: 0 }
  const oursSecs = await bestOf(3, async () => {
    const t0 = performance.now()
    const r = await pack({ input, outDir: join(dir, 'packed'), kind: 'memfile', buildId: randomBuildId(), codec: 'zstd', level: 3, frameSize: 2 * MiB, blockSize: 4096, workers: 2 })
    packed = { dataPath: r.dataPath, compressed: r.table.compressedSize }
    return (performance.now() - t0) / 1000
  })
  emit('compress_zstd3_2workers_throughput', size / oursSecs / MB, 'MB/s', size / cliSecs / MB, '>= 0.9')

  const cliDecomp = await bestOf(3, () => timeCommand('zstd', ['-q', '-d', '-f', whole, '-o', join(dir, 'out.raw')]))
  const oursDecomp = await bestOf(3, () => decompressFramed(packed.dataPath, join(dir, 'packed', 'memfile.header')))
  emit('decompress_zstd_throughput', size / oursDecomp / MB, 'MB/s', size / cliDecomp / MB, '>= 0.9')

  const wholeSize = statSync(whole).size
  emit('compression_ratio_2MiB_frames_zstd3', size / packed.compressed, 'x', size / wholeSize)
  await rm(dir, { recursive: true, force: true })
}

/** Sequential decode of every frame (one at a time, like `zstd -d`), writing the plain file. */
async function decompressFramed(dataPath: string, headerPath: string): Promise<number> {
  const { decodeHeader } = await import('../src/format/header.ts')
  const { readFile } = await import('node:fs/promises')
  const header = decodeHeader(await readFile(headerPath))
  const table = [...header.builds.values()][0].frames
  const codec = getCodec('zstd')
  const t0 = performance.now()
  const src = await open(dataPath, 'r')
  const dst = await open(`${dataPath}.out`, 'w')
  try {
    for (const f of table.frames) {
      const buf = Buffer.allocUnsafe(f.sizeC)
      await src.read(buf, 0, f.sizeC, f.startC)
      const plain = await codec.decompress(buf, f.sizeU)
      await dst.write(plain, 0, plain.byteLength, f.startU)
    }
  } finally {
    await src.close()
    await dst.close()
  }
  return (performance.now() - t0) / 1000
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await formatBench()
