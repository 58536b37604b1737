/**
 * Stall detection for peer streams with ONE low-resolution timer for all of them (STYLE: undici),
 * instead of a timer per request that would have to be re-armed on every chunk. A watched stream
 * records the time of its last progress; each tick fails the ones that made none for `stallMs`.
 */
import { WATCHDOG_TICK_MS } from '../constants.ts'

export interface Watched {
  /** performance.now() of the last byte received or write drained. */
  readonly lastActivity: number
  readonly stallMs: number
  /** Called once, from the timer, when the stream made no progress for `stallMs`. */
  stalled(): void
}

export class Watchdog {
  private readonly items = new Set<Watched>()
  private readonly tickMs: number
  private timer: NodeJS.Timeout | undefined

  constructor(tickMs = WATCHDOG_TICK_MS) {
    this.tickMs = tickMs
  }

  add(item: Watched): void {
    this.items.add(item)
    // unref: a watchdog must never be what keeps a process alive.
    this.timer ??= setInterval(() => this.tick(), this.tickMs).unref()
  }

  delete(item: Watched): void {
    this.items.delete(item)
    if (this.items.size === 0) this.stop()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  get size(): number {
    return this.items.size
  }

  private tick(): void {
    const now = performance.now()
    for (const item of this.items) {
      if (now - item.lastActivity <= item.stallMs) continue
      this.items.delete(item)
      item.stalled()
    }
    if (this.items.size === 0) this.stop()
  }
}
