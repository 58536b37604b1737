/**
 * Preload for peak-RSS measurements of a real `snapswarm` command (bench/upload-bench.ts):
 *
 *   SNAPSWARM_RSS_REPORT=/tmp/r.json node --import ./bench/rss-child.ts src/cli/main.ts push ...
 *
 * On exit it writes one JSON line to SNAPSWARM_RSS_REPORT: the process's peak resident set size
 * (`getrusage` ru_maxrss, the kernel's high-water mark, KiB; the same figure as VmHWM in
 * /proc/<pid>/status, but exact — no polling interval to miss a peak), plus CPU times. The measured
 * process runs the CLI's own code path.
 *
 * SNAPSWARM_BENCH_PART_MBPS=N (optional) models slow object storage for the worst case of the part
 * writer's memory: each multipart part upload of the filesystem store first waits size / (N MB/s),
 * like one connection with that bandwidth. Parts then pile up to the upload concurrency, so the
 * measured peak includes every part buffer the writer can hold at once.
 */
import { writeFileSync } from 'node:fs'

const report = process.env.SNAPSWARM_RSS_REPORT
if (report) {
  process.once('exit', (code) => {
    const ru = process.resourceUsage()
    const line = { maxRssKiB: ru.maxRSS, exitCode: code, userCpuMs: Math.round(ru.userCPUTime / 1000), systemCpuMs: Math.round(ru.systemCPUTime / 1000) }
    writeFileSync(report, `${JSON.stringify(line)}\n`)
  })
}

const partMBps = Number(process.env.SNAPSWARM_BENCH_PART_MBPS ?? 0)
if (partMBps > 0) {
  // Same module instance as the CLI's (ESM modules are singletons per URL), so patching the prototype
  // slows the store the CLI opens.
  const { FsStore } = await import('../src/storage/fs-store.ts')
  const startUpload = FsStore.prototype.startUpload
  FsStore.prototype.startUpload = function (this: object, ...args: Parameters<typeof startUpload>) {
    const upload = startUpload.apply(this as never, args)
    const uploadPart = upload.uploadPart.bind(upload)
    upload.uploadPart = async (partNumber, data, signal) => {
      await new Promise((r) => setTimeout(r, (data.byteLength / (partMBps * 1e6)) * 1000))
      return uploadPart(partNumber, data, signal)
    }
    return upload
  }
}
