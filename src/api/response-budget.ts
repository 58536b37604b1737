/**
 * One budget, for the whole node, of the bytes HTTP responses hold in memory: every buffer a Range
 * answer is read into is leased from it and returned once the socket took all of it (or the
 * connection is gone). Without it, every client that opens a big read and does not read pins its own
 * buffers, and a few hundred of them take the node's memory with them.
 *
 * Beyond the budget a read waits, first in first out. A read that has not sent its status yet is
 * refused instead (503, `ERR_BUSY`, with a Retry-After) when too many reads already wait or when it
 * waited too long; a read already under way only waits, since its status line is out. Leases of
 * the common size (a full read chunk) reuse a few pooled buffers, so steady streaming allocates
 * nothing per read.
 */
import { InvalidArgumentError, SnapswarmError } from '../errors.ts'
import { counter, gauge, type Registry } from '../obs/metrics.ts'

/** Too many reads in flight: come back later (Retry-After), nothing was read or reserved. */
export class BusyError extends SnapswarmError {
  readonly retryAfterSec: number
  constructor(message: string, retryAfterSec: number) {
    super('ERR_BUSY', message)
    this.retryAfterSec = retryAfterSec
  }
}

export interface Lease {
  /** Exactly the bytes asked for; the holder may fill and send it until release(). */
  readonly buf: Buffer
  /** Give the bytes back (idempotent). Only once nothing (a socket write) still reads `buf`. */
  release(): void
}

export interface ResponseBudgetOptions {
  /** Bytes leased at most across all requests. */
  readonly maxBytes: number
  /** Reads waiting at most; a new read beyond that is refused at once. */
  readonly maxWaiting: number
  /** A read that has not answered yet gives up waiting after this long (503). */
  readonly waitMs: number
  /** The usual lease size (a full read chunk): such buffers are pooled. */
  readonly chunkBytes: number
  readonly registry?: Registry
}

interface Waiter {
  readonly bytes: number
  readonly grant: () => void
}

/** Free pooled buffers kept for reuse; more are left to the garbage collector. */
const POOL_KEEP = 4

export class ResponseBudget {
  readonly maxBytes: number
  readonly chunkBytes: number
  private readonly opts: ResponseBudgetOptions
  private used = 0
  private readonly queue: Waiter[] = []
  private readonly pool: Buffer[] = []
  private readonly metrics?: {
    inUse: ReturnType<typeof gauge>
    waiting: ReturnType<typeof gauge>
    refused: ReturnType<typeof counter>
  }

  constructor(opts: ResponseBudgetOptions) {
    if (!(opts.maxBytes > 0) || !(opts.chunkBytes > 0)) throw new InvalidArgumentError(`response budget: expected positive byte counts, found maxBytes=${opts.maxBytes} chunkBytes=${opts.chunkBytes}`)
    this.opts = opts
    this.maxBytes = opts.maxBytes
    // A lease never exceeds the budget: with a small budget the reads get smaller, not stuck.
    this.chunkBytes = Math.min(opts.chunkBytes, opts.maxBytes)
    const reg = opts.registry
    if (reg) {
      gauge(reg, 'snapswarm_http_response_bytes_limit', 'Budget of bytes held for HTTP responses across all requests (http.responseBufferBytes)').set(this.maxBytes)
      this.metrics = {
        inUse: gauge(reg, 'snapswarm_http_response_bytes', 'Bytes held for HTTP responses right now (read buffers not yet taken by the socket)'),
        waiting: gauge(reg, 'snapswarm_http_reads_waiting', 'HTTP reads waiting for room in the response budget'),
        refused: counter(reg, 'snapswarm_http_reads_refused_total', 'HTTP reads refused with 503 because the response budget stayed full', ['reason']),
      }
    }
  }

  get bytesInUse(): number {
    return this.used
  }

  get waiting(): number {
    return this.queue.length
  }

  /** Would a lease of `bytes` be granted at once (nobody waiting, room left)? */
  fitsNow(bytes: number): boolean {
    return this.queue.length === 0 && this.used + bytes <= this.maxBytes
  }

  /**
   * `bytes` (≤ chunkBytes) for one read. `refusable`: the request has not answered yet, so it may be
   * refused with BusyError; otherwise it waits for as long as it takes. `signal` (the client went
   * away) ends the wait with its reason.
   */
  async acquire(bytes: number, signal: AbortSignal, refusable: boolean): Promise<Lease> {
    if (!Number.isInteger(bytes) || bytes <= 0 || bytes > this.chunkBytes) {
      throw new InvalidArgumentError(`response budget: expected a lease of 1..${this.chunkBytes} bytes, found ${bytes}`)
    }
    signal.throwIfAborted()
    if (this.queue.length === 0 && this.used + bytes <= this.maxBytes) {
      this.used += bytes
      return this.lease(bytes)
    }
    if (refusable && this.queue.length >= this.opts.maxWaiting) {
      throw this.refuse('queue_full', `${this.queue.length} reads already wait for the ${this.maxBytes}-byte response budget (http.maxWaitingReads ${this.opts.maxWaiting})`)
    }
    await this.wait(bytes, signal, refusable)
    return this.lease(bytes)
  }

  /** Queue until `bytes` fit (the grant reserves them), the wait times out, or `signal` fires. */
  private wait(bytes: number, signal: AbortSignal, refusable: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const leave = (): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        const i = this.queue.indexOf(waiter)
        if (i >= 0) this.queue.splice(i, 1)
        this.metrics?.waiting.set(this.queue.length)
      }
      const onAbort = (): void => {
        leave()
        this.pump() // a big read that left the head of the queue may let smaller ones in
        reject(signal.reason)
      }
      const waiter: Waiter = {
        bytes,
        grant: () => {
          leave()
          this.used += bytes
          resolve()
        },
      }
      signal.addEventListener('abort', onAbort, { once: true })
      if (refusable) {
        timer = setTimeout(() => {
          leave()
          this.pump()
          reject(this.refuse('wait_timeout', `the ${this.maxBytes}-byte response budget stayed full for ${this.opts.waitMs} ms (http.responseWaitMs)`))
        }, this.opts.waitMs)
        timer.unref()
      }
      this.queue.push(waiter)
      this.metrics?.waiting.set(this.queue.length)
    })
  }

  /** A buffer for bytes already counted in `used`. */
  private lease(bytes: number): Lease {
    this.metrics?.inUse.set(this.used)
    const buf = bytes === this.chunkBytes ? (this.pool.pop() ?? Buffer.allocUnsafe(bytes)) : Buffer.allocUnsafe(bytes)
    let released = false
    return {
      buf,
      release: () => {
        if (released) return
        released = true
        if (buf.byteLength === this.chunkBytes && this.pool.length < POOL_KEEP) this.pool.push(buf)
        this.used -= bytes
        this.metrics?.inUse.set(this.used)
        this.pump()
      },
    }
  }

  /** Let the head of the queue in while it fits; first come, first served, so big reads are not starved. */
  private pump(): void {
    while (this.queue.length > 0 && this.used + this.queue[0].bytes <= this.maxBytes) this.queue[0].grant()
  }

  private refuse(reason: 'queue_full' | 'wait_timeout', message: string): BusyError {
    this.metrics?.refused.inc({ reason })
    return new BusyError(message, Math.min(30, Math.max(1, Math.ceil(this.opts.waitMs / 1000))))
  }
}
