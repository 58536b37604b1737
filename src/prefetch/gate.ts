/**
 * The node's prefetch slots, strictly below demand reads: at most `concurrency` prefetches run at once,
 * and every demand fetch in flight takes one of those slots away (demand preempts), so while readers
 * are missing frames no new prefetch starts. Demand fetches themselves never wait here: they do not
 * pass through the gate at all, so a demand read never queues behind a prefetch. A prefetch already
 * running is not cancelled; a demand read of the same frame joins it instead of fetching it twice.
 */
import type { DemandLoad } from '../read/fetcher.ts'

interface Waiter {
  readonly grant: () => void
  readonly signal: AbortSignal
}

export class PrefetchGate {
  readonly concurrency: number
  private readonly load: DemandLoad
  private active = 0
  private readonly waiters: Waiter[] = []

  constructor(load: DemandLoad, concurrency: number) {
    this.load = load
    this.concurrency = concurrency
    load.onDemandEnd(() => this.wake())
  }

  /** Prefetches running now. */
  get running(): number {
    return this.active
  }

  /** Prefetches waiting for a slot. */
  get waiting(): number {
    return this.waiters.length
  }

  /** Wait for a slot (rejects with the signal's reason if aborted first); call the returned release once. */
  acquire(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(signal.reason)
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiters.indexOf(waiter)
        if (i >= 0) this.waiters.splice(i, 1)
        reject(signal.reason)
      }
      const waiter: Waiter = {
        signal,
        grant: () => {
          signal.removeEventListener('abort', onAbort)
          this.active++
          let released = false
          resolve(() => {
            if (released) return
            released = true
            this.active--
            this.wake()
          })
        },
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiters.push(waiter)
      this.wake()
    })
  }

  private free(): number {
    return this.concurrency - this.load.demandInFlight - this.active
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.free() > 0) this.waiters.shift()!.grant()
  }
}
