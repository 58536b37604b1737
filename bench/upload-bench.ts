/**
 * Upload figures (`BENCH=upload npm run bench`):
 *
 * 1. Upload throughput of a 1 GiB VM-like memfile to fake-gcs-server through `uploadBuild` (use case
 *    `pause`, default compression: zstd-3, 2 MiB frames, 2 workers, parts in parallel), as a ratio to a
 *    plain `@google-cloud/storage` upload of the RAW file to the same server in the same run. The
 *    baseline is `bucket.upload(file, { resumable: false })`: one streaming multipart POST, SDK defaults
 *    otherwise (crc32c validation on) — what a user of the client would write, with the least protocol
 *    overhead the SDK offers (a resumable upload adds a session round trip; it measured within noise
 *    of this one on the emulator).
 *    Both are rates of the raw file's bytes (1 GiB / wall time); interleaved, best of 2 each.
 *
 * 2. Peak RSS of `snapswarm push` in a child process (bench/rss-child.ts reports its ru_maxrss):
 *    a 4 GiB and a 1 GiB file to `file://` storage (fake-gcs-server's memory backend would hold the
 *    4 GiB push in ITS memory; the figure is the snapswarm process's), the 1 GiB file to the emulator
 *    (the GCS client's share), the 1 GiB file with every part upload slowed to 20 MB/s (parts pile up to
 *    the upload concurrency: the worst case of the part writer's memory), and an 8 MiB push (the fixed
 *    cost of the process: Node, type stripping, the GCS SDK, zod, pino).
 *
 * Sizes: BENCH_UPLOAD_MIB (default 1024) and BENCH_UPLOAD_RSS_MIB (default 4096). Runs in ~2 minutes
 * on 2 cores; temp files are removed (SNAPSWARM_BENCH_DIR chooses where they go).
 */
import { spawn } from 'node:child_process'
import { open, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Storage } from '@google-cloud/storage'
import { randomBuildId } from '../src/format/uuid.ts'
import { openStore } from '../src/storage/url.ts'
import { uploadBuild } from '../src/upload/build-upload.ts'
import { writeVmData } from '../src/util/vmdata.ts'
import { startFakeGcs } from './lib/fake-gcs.ts'
import { MB, MiB, benchDir, emit } from './common.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLI = join(ROOT, 'src/cli/main.ts')
const RSS_PRELOAD = join(ROOT, 'bench/rss-child.ts')
const RSS_TARGET = '<= 300 MiB'
const started = performance.now()
/** Progress on stderr (stdout carries only the JSON figures). */
const note = (what: string) => console.error(`# upload +${((performance.now() - started) / 1000).toFixed(0)}s ${what}`)

export async function uploadBench(
  sizeMiB = Number(process.env.BENCH_UPLOAD_MIB ?? 1024),
  rssMiB = Number(process.env.BENCH_UPLOAD_RSS_MIB ?? 4096),
): Promise<void> {
  const dir = benchDir('upload')
  try {
    const input = join(dir, 'memfile.raw')
    const size = sizeMiB * MiB
    await writeVmData(input, size, 42)
    note(`wrote ${sizeMiB} MiB of VM-like data`)

    const gcs = await startFakeGcs('snapswarm-bench')
    try {
      // --- 1. throughput: uploadBuild vs a plain client upload of the raw file, same server, same run.
      const bucket = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'snapswarm-bench' }).bucket(gcs.bucket)
      const store = await openStore(gcs.url, { gcsEndpoint: gcs.endpoint })
      let plainBest = Number.POSITIVE_INFINITY
      let oursBest = Number.POSITIVE_INFINITY
      try {
        for (let round = 0; round < 2; round++) {
          let t0 = performance.now()
          await bucket.upload(input, { destination: `plain/${round}`, resumable: false })
          plainBest = Math.min(plainBest, (performance.now() - t0) / 1000)
          note(`plain client upload ${round + 1}/2`)
          await bucket.file(`plain/${round}`).delete()

          const buildId = randomBuildId()
          t0 = performance.now()
          await uploadBuild({ store, buildId, files: { memfile: input }, useCase: 'pause' })
          oursBest = Math.min(oursBest, (performance.now() - t0) / 1000)
          note(`uploadBuild ${round + 1}/2`)
          // The emulator keeps objects in memory: drop each build before the next run.
          for (const name of await store.list(`${buildId}/`)) await store.delete(name)
        }
      } finally {
        await store.close()
      }
      emit(`upload_${sizeMiB}MiB_pause_zstd3_throughput_vs_plain_gcs_client_raw`, size / oursBest / MB, 'MB/s', size / plainBest / MB, '>= 1')

      // --- 2a. the GCS client's share of the push process's memory.
      const gcsRss = await pushRss(input, gcs.url, { STORAGE_EMULATOR_HOST: gcs.endpoint })
      emit(`push_peak_rss_${sizeMiB}MiB_gcs_emulator`, gcsRss, 'MiB', null, RSS_TARGET)
    } finally {
      await gcs.stop()
    }

    // --- 2b. peak RSS on file:// storage: fixed cost, 1 GiB, worst case (slow parts), 4 GiB.
    const bucketDir = join(dir, 'bucket')
    const fileUrl = pathToFileURL(bucketDir).href
    const small = join(dir, 'small.raw')
    await writeVmData(small, 8 * MiB, 43)
    const floor = await pushRss(small, fileUrl)
    await rm(small)
    emit('push_peak_rss_8MiB_fixed_cost', floor, 'MiB', null)

    const rss1 = await pushRss(input, fileUrl)
    await rm(bucketDir, { recursive: true, force: true })
    emit(`push_peak_rss_${sizeMiB}MiB_file`, rss1, 'MiB', null, RSS_TARGET)
    emit(`push_peak_rss_${sizeMiB}MiB_file_slow_parts_20MBps`, await pushRss(input, fileUrl, { SNAPSWARM_BENCH_PART_MBPS: '20' }), 'MiB', null, RSS_TARGET)
    await rm(bucketDir, { recursive: true, force: true })

    // The big file repeats the VM-like data (frames are compressed independently, so repetition does not
    // change the pipeline's work); made by copying, which is much faster than generating it.
    const big = join(dir, 'big.raw')
    await repeatFile(input, big, Math.ceil(rssMiB / sizeMiB), rssMiB * MiB)
    note(`wrote the ${rssMiB} MiB file`)
    await rm(input)
    const rssBig = await pushRss(big, fileUrl)
    // Ratio to the small file's figure: ≈ 1 when memory is independent of the file size.
    emit(`push_peak_rss_${rssMiB}MiB_file`, rssBig, 'MiB', rss1, `${RSS_TARGET}, ratio ≈ 1`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Runs `snapswarm push` of one memfile in a child process; returns its peak RSS in MiB. */
export async function pushRss(file: string, storage: string, env: Record<string, string> = {}): Promise<number> {
  const report = `${file}.rss.json`
  const args = ['--import', RSS_PRELOAD, CLI, 'push', '--storage', storage, '--build-id', randomBuildId(), '--memfile', file, '--use-case', 'pause']
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env, SNAPSWARM_RSS_REPORT: report },
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000)
  })
  const code = await new Promise<number | null>((resolve, reject) => child.once('error', reject).once('exit', resolve))
  if (code !== 0) throw new Error(`snapswarm push ${file} exited ${code}: ${stderr}`)
  const { maxRssKiB } = JSON.parse(await readFile(report, 'utf8')) as { maxRssKiB: number }
  await rm(report)
  note(`push of ${file} to ${storage.slice(0, 5)}... ${env.SNAPSWARM_BENCH_PART_MBPS ? '(slow parts) ' : ''}done`)
  return maxRssKiB / 1024
}

/** Writes `length` bytes made of `src` repeated `copies` times (the last copy truncated). */
async function repeatFile(src: string, dst: string, copies: number, length: number): Promise<void> {
  const from = await open(src, 'r')
  const to = await open(dst, 'w')
  try {
    const buf = Buffer.allocUnsafe(16 * MiB)
    let out = 0
    for (let i = 0; i < copies && out < length; i++) {
      for (let pos = 0; out < length; ) {
        const { bytesRead } = await from.read(buf, 0, Math.min(buf.length, length - out), pos)
        if (bytesRead === 0) break
        await to.write(buf, 0, bytesRead, out)
        pos += bytesRead
        out += bytesRead
      }
    }
  } finally {
    await from.close()
    await to.close()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await uploadBench()
