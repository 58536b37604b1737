/**
 * One low-resolution timer shared by many short-lived deadlines (the way undici shares one timer): a
 * hedge per frame request, or a stall check per peer stream, must not cost a `setTimeout` each, nor a
 * timer re-armed on every chunk. Entries are kept in a Set and checked on a tick every
 * `resolutionMs`; the tick runs (unref'd: it never keeps a process alive) only while entries exist.
 * A one-shot entry (`after`) fires no earlier than its delay and at most one tick late; a watched
 * entry (`watch`) fires on the first tick that finds it idle for longer than its `stallMs`.
 */
export interface CoarseTimeout {
  /** Idempotent; a cancelled entry never fires. */
  cancel(): void
}

/** Something that can stall: it records the time of its last progress on the timer's clock. */
export interface Watched {
  /** The clock's time (performance.now() by default) of the last progress. */
  readonly lastActivity: number
  readonly stallMs: number
  /** Called once, from the timer, when no progress was made for `stallMs`. */
  stalled(): void
}

interface Entry {
  due(now: number): boolean
  readonly fn: () => void
}

export class CoarseTimer {
  readonly resolutionMs: number
  private readonly entries = new Set<Entry>()
  private tick: NodeJS.Timeout | undefined
  private readonly now: () => number

  /** `now` is the clock in ms (tests drive a fake one). */
  constructor(resolutionMs: number, now: () => number = () => performance.now()) {
    this.resolutionMs = Math.max(1, resolutionMs)
    this.now = now
  }

  /** Number of armed entries (tests). */
  get size(): number {
    return this.entries.size
  }

  /** Call `fn` once, `ms` from now (at most one tick late). */
  after(ms: number, fn: () => void): CoarseTimeout {
    const at = this.now() + ms
    return this.add({ due: (now) => at <= now, fn })
  }

  /** Call `item.stalled()` once, on the first tick that finds it without progress for over `stallMs`. */
  watch(item: Watched): CoarseTimeout {
    return this.add({ due: (now) => now - item.lastActivity > item.stallMs, fn: () => item.stalled() })
  }

  /** Stop ticking; armed entries stay and are checked again once a new entry re-arms the tick. */
  stop(): void {
    if (this.tick !== undefined) clearInterval(this.tick)
    this.tick = undefined
  }

  private add(entry: Entry): CoarseTimeout {
    this.entries.add(entry)
    if (this.tick === undefined) {
      this.tick = setInterval(() => this.fire(), this.resolutionMs)
      this.tick.unref()
    }
    return { cancel: () => this.remove(entry) }
  }

  private remove(entry: Entry): void {
    this.entries.delete(entry)
    if (this.entries.size === 0) this.stop()
  }

  private fire(): void {
    const now = this.now()
    for (const e of this.entries) {
      if (!e.due(now)) continue
      this.remove(e)
      try {
        e.fn()
      } catch {
        // A callback's failure is its own; the other entries still fire.
      }
    }
  }
}
