/**
 * Groups the emitted frames of one data file into parts and uploads them concurrently (bounded), with
 * per-part retries (exponential backoff + full jitter). Memory: (concurrency + 1) × partSize.
 *
 * On any error every in-flight part settles before the upload is aborted, so `abort`
 * never races a part that is still being written (the Go system's orphaned parts).
 */
import type { MultipartUpload } from '../storage/store.ts'
import { sleep } from '../util/abort.ts'

export interface PartWriterOptions {
  readonly partSize: number
  readonly concurrency: number
  readonly maxAttempts?: number
  readonly baseDelayMs?: number
  readonly signal?: AbortSignal
  /** Awaited before each part is sent (bandwidth limit). */
  readonly throttle?: (bytes: number) => Promise<void>
  /** Bytes acknowledged by storage so far. */
  readonly onUploaded?: (bytes: number) => void
}

export class PartWriter {
  private readonly upload: MultipartUpload
  private readonly opts: PartWriterOptions
  private buf: Buffer
  private filled = 0
  private nextPart = 1
  private readonly inflight = new Set<Promise<void>>()
  private failure: unknown = null
  private uploaded = 0
  private total = 0

  constructor(upload: MultipartUpload, opts: PartWriterOptions) {
    this.upload = upload
    this.opts = opts
    this.buf = Buffer.allocUnsafe(opts.partSize)
  }

  /** Bytes handed to write() so far: the size of the object once finished. */
  get bytesWritten(): number {
    return this.total
  }

  /** Append bytes; resolves once they are buffered (waiting for a free upload slot if all are busy). */
  async write(bytes: Uint8Array): Promise<void> {
    this.total += bytes.byteLength
    let off = 0
    while (off < bytes.byteLength) {
      this.throwIfFailed()
      const n = Math.min(bytes.byteLength - off, this.buf.byteLength - this.filled)
      this.buf.set(bytes.subarray(off, off + n), this.filled)
      this.filled += n
      off += n
      if (this.filled === this.buf.byteLength) await this.flush()
    }
  }

  /** Upload the last part, wait for all parts, and assemble the object. */
  async finish(): Promise<void> {
    if (this.filled > 0 || this.nextPart === 1) await this.flush()
    await this.drain()
    this.throwIfFailed()
    // Completing is idempotent on both backends (the parts stay until it succeeds): retry it like a part.
    await this.withRetry(() => this.upload.complete(this.opts.signal))
  }

  /** Wait for every in-flight part to settle, then remove everything this upload wrote. */
  async abort(): Promise<void> {
    await this.drain()
    await this.upload.abort()
  }

  private async flush(): Promise<void> {
    while (this.inflight.size >= this.opts.concurrency) await Promise.race(this.inflight)
    this.throwIfFailed()
    const part = this.buf.subarray(0, this.filled)
    const partNumber = this.nextPart++
    // The next part gets a fresh buffer: the one just handed off is owned by its upload until it settles.
    this.buf = Buffer.allocUnsafe(this.opts.partSize)
    this.filled = 0
    await this.opts.throttle?.(part.byteLength)
    const p = this.sendWithRetry(partNumber, part).then(
      () => {
        this.uploaded += part.byteLength
        this.opts.onUploaded?.(this.uploaded)
      },
      (err) => {
        this.failure ??= err
      },
    )
    const tracked = p.finally(() => this.inflight.delete(tracked))
    this.inflight.add(tracked)
  }

  private sendWithRetry(partNumber: number, data: Uint8Array): Promise<void> {
    return this.withRetry(() => this.upload.uploadPart(partNumber, data, this.opts.signal))
  }

  private async withRetry(op: () => Promise<void>): Promise<void> {
    const maxAttempts = this.opts.maxAttempts ?? 3
    const base = this.opts.baseDelayMs ?? 200
    for (let attempt = 1; ; attempt++) {
      try {
        return await op()
      } catch (err) {
        if (attempt >= maxAttempts || !isRetryable(err) || this.opts.signal?.aborted || this.failure) throw err
        const delay = Math.random() * base * 2 ** (attempt - 1)
        await sleep(delay, this.opts.signal) // an abort during the backoff ends it at once
      }
    }
  }

  private async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight])
  }

  private throwIfFailed(): void {
    this.opts.signal?.throwIfAborted()
    if (this.failure) throw this.failure
  }
}

/** Storage errors carry `retryable`; socket-level failures are retryable too. */
export function isRetryable(err: unknown): boolean {
  const e = err as { retryable?: boolean; code?: string; name?: string }
  if (e?.name === 'AbortError') return false
  if (typeof e?.retryable === 'boolean') return e.retryable
  return ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET'].includes(String(e?.code))
}
