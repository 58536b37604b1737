/**
 * BENCH ONLY: a simulated GCS on a process's storage READ path, loaded before the program with
 * `node --import bench/throttle.ts` (or NODE_OPTIONS: bench/lib/throttle-env.ts), so a storage resume can be
 * compared with a peer resume on a machine whose "bucket" is a local directory. The product never
 * reads these settings: this preload wraps the filesystem store's reads from outside.
 *
 * What is slowed down: every ranged read of an object (frames) and whole reads of headers and access
 * traces; each waits SNAPSWARM_BENCH_STORAGE_LATENCY_MS before it starts (time to first byte) and
 * then lasts at least its size at SNAPSWARM_BENCH_STORAGE_MBPS (MB/s per request). Other reads
 * (build claims) and listings are not. Off when neither variable is set.
 */
import { FsStore } from '../src/storage/fs-store.ts'
import type { GetOptions } from '../src/storage/store.ts'

const latencyMs = Number(process.env.SNAPSWARM_BENCH_STORAGE_LATENCY_MS ?? 0)
const bytesPerMs = Number(process.env.SNAPSWARM_BENCH_STORAGE_MBPS ?? 0) * 1000

/** Whole-object reads that the simulated bucket slows down: headers and access traces. */
function throttledGet(name: string): boolean {
  return name.endsWith('.header') || name.endsWith('.prefetch')
}

/** Run a storage read under the simulated latency and per-request bandwidth. */
async function throttled(read: () => Promise<Uint8Array>, signal?: AbortSignal): Promise<Uint8Array> {
  if (latencyMs > 0) await wait(latencyMs, signal)
  const t0 = performance.now()
  const bytes = await read()
  if (bytesPerMs > 0) await wait(bytes.byteLength / bytesPerMs - (performance.now() - t0), signal)
  return bytes
}

function wait(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(t)
      reject(signal?.reason)
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

if (latencyMs > 0 || bytesPerMs > 0) {
  const { get, getRange } = FsStore.prototype
  FsStore.prototype.getRange = function (this: FsStore, name: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    return throttled(() => getRange.call(this, name, offset, length, signal), signal)
  }
  FsStore.prototype.get = function (this: FsStore, name: string, opts?: GetOptions): Promise<Uint8Array> {
    if (!throttledGet(name)) return get.call(this, name, opts)
    return throttled(() => get.call(this, name, opts))
  }
}
