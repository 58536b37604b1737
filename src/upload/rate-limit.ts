/**
 * Token-bucket bandwidth limit shared by every upload of a node (`--upload-rate`), so pause uploads
 * do not saturate the node's network. A burst of one second's worth is allowed; a caller asking for
 * more than the bucket holds waits for the deficit to refill (parts larger than a second's budget
 * still go, just later).
 */
import { sleep } from '../util/abort.ts'

export class RateLimiter {
  private readonly rate: number
  private tokens: number
  private readonly now: () => number
  private last: number
  private queue: Promise<void> = Promise.resolve()

  /** `bytesPerSec` ≤ 0 means unlimited. `now` is the clock in ms (tests drive a fake one). */
  constructor(bytesPerSec: number, now: () => number = () => performance.now()) {
    this.rate = bytesPerSec
    this.tokens = bytesPerSec
    this.now = now
    this.last = now()
  }

  get unlimited(): boolean {
    return this.rate <= 0
  }

  /** Resolves when `bytes` may be sent. Callers are served in order (no starvation). */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.unlimited) return Promise.resolve()
    const turn = this.queue.then(() => this.wait(bytes, signal))
    // A cancelled caller must not stall the callers behind it.
    this.queue = turn.catch(() => {})
    return turn
  }

  private async wait(bytes: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    this.refill()
    this.tokens -= bytes
    if (this.tokens < 0) {
      const ms = (-this.tokens / this.rate) * 1000
      try {
        await sleep(ms, signal)
      } catch (err) {
        this.tokens += bytes // the bytes were never sent
        throw err
      }
      this.refill()
    }
  }

  private refill(): void {
    const now = this.now()
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate)
    this.last = now
  }
}
