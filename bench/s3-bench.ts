/**
 * S3 backend figures (`BENCH=s3 npm run bench`), against moto's S3 server on 127.0.0.1 (the tests'
 * server, bench/lib/s3-server.ts; a Python server, so absolute rates say little about AWS):
 *
 * 1. Upload throughput of a VM-like memfile through `uploadBuild` (use case `pause`, default
 *    compression: zstd-3 frames, 12 MiB parts uploaded in parallel as a native multipart upload with a
 *    create-only complete), as a ratio to a plain `@aws-sdk/client-s3` PutObject of the RAW file to the
 *    same server in the same run (one request with the file read into memory first, reading included).
 *    A streamed body is no fair baseline here: the SDK sends a stream with aws-chunked encoding and a
 *    trailing checksum, which moto decodes at under 1 MB/s (measured: 0.86 MB/s for 256 MiB).
 *    Both are rates of the raw file's bytes; interleaved, best of 2 each.
 * 2. Peak RSS of `snapswarm push` of the same file to S3 in a child process (bench/rss-child.ts).
 *
 * Size: BENCH_S3_MIB (default 256). Temp files are removed.
 */
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { randomBuildId } from '../src/format/uuid.ts'
import { openStore } from '../src/storage/url.ts'
import { uploadBuild } from '../src/upload/build-upload.ts'
import { writeVmData } from '../src/util/vmdata.ts'
import { startS3Server } from './lib/s3-server.ts'
import { benchDir, emit, MB, MiB } from './common.ts'
import { pushRss } from './upload-bench.ts'

const started = performance.now()
/** Progress on stderr (stdout carries only the JSON figures). */
const note = (what: string) => console.error(`# s3 +${((performance.now() - started) / 1000).toFixed(0)}s ${what}`)

export async function s3Bench(sizeMiB = Number(process.env.BENCH_S3_MIB ?? 256)): Promise<void> {
  const dir = benchDir('s3')
  const s3 = await startS3Server()
  try {
    const input = join(dir, 'memfile.raw')
    const size = sizeMiB * MiB
    await writeVmData(input, size, 42)
    const bucket = await s3.createBucket('bench')
    const sdk = new S3Client({ ...s3.storeOptions, forcePathStyle: true })
    const store = await openStore(`s3://${bucket}`, { s3: s3.storeOptions })
    let plainBest = Number.POSITIVE_INFINITY
    let oursBest = Number.POSITIVE_INFINITY
    try {
      for (let round = 0; round < 2; round++) {
        let t0 = performance.now()
        await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: `plain/${round}`, Body: await readFile(input), ContentLength: size }))
        plainBest = Math.min(plainBest, (performance.now() - t0) / 1000)
        await sdk.send(new DeleteObjectCommand({ Bucket: bucket, Key: `plain/${round}` }))
        note(`plain PutObject ${round + 1}/2`)

        const buildId = randomBuildId()
        t0 = performance.now()
        await uploadBuild({ store, buildId, files: { memfile: input }, useCase: 'pause' })
        oursBest = Math.min(oursBest, (performance.now() - t0) / 1000)
        for (const name of await store.list(`${buildId}/`)) await store.delete(name)
        note(`uploadBuild ${round + 1}/2`)
      }
    } finally {
      sdk.destroy()
      await store.close()
    }
    emit(`upload_${sizeMiB}MiB_pause_zstd3_throughput_vs_plain_s3_putobject_raw`, size / oursBest / MB, 'MB/s', size / plainBest / MB)
    emit(`push_peak_rss_${sizeMiB}MiB_s3`, await pushRss(input, `s3://${bucket}`, s3.env), 'MiB', null, '<= 300 MiB')
  } finally {
    await s3.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
