/**
 * BENCH ONLY (bench/cluster-bench.ts, issue 6): a simulated GCS on this process's storage READ path
 * (frame ranges and stored headers), so a storage resume can be compared with a peer resume on a
 * machine whose "bucket" is a local directory. Off unless SNAPSWARM_BENCH_STORAGE_LATENCY_MS (time to
 * first byte) or SNAPSWARM_BENCH_STORAGE_MBPS (MB/s per request) is set; not documented as config.
 * Read here and nowhere else.
 */
const latencyMs = Number(process.env.SNAPSWARM_BENCH_STORAGE_LATENCY_MS ?? 0)
const bytesPerMs = Number(process.env.SNAPSWARM_BENCH_STORAGE_MBPS ?? 0) * 1000

/** Run a storage read under the simulated latency and per-request bandwidth, when enabled. */
export async function benchThrottled(read: () => Promise<Uint8Array>, signal?: AbortSignal): Promise<Uint8Array> {
  if (!(latencyMs > 0) && !(bytesPerMs > 0)) return read()
  if (latencyMs > 0) await pause(latencyMs, signal)
  const t0 = performance.now()
  const bytes = await read()
  if (bytesPerMs > 0) await pause(bytes.byteLength / bytesPerMs - (performance.now() - t0), signal)
  return bytes
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
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
