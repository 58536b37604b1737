/**
 * One low-resolution timer shared by many short-lived deadlines (STYLE: undici's shared timer): a
 * hedge per frame request must not cost a `setTimeout` per request. Entries are kept in a Set and
 * checked on a tick every `resolutionMs`; the tick runs (unref'd) only while entries exist.
 * A callback fires no earlier than its delay and at most one tick late.
 */
export interface CoarseTimeout {
  /** Idempotent; a cancelled entry never fires. */
  cancel(): void
}

interface Entry {
  readonly at: number
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

  after(ms: number, fn: () => void): CoarseTimeout {
    const entry: Entry = { at: this.now() + ms, fn }
    this.entries.add(entry)
    if (this.tick === undefined) {
      this.tick = setInterval(() => this.fire(), this.resolutionMs)
      this.tick.unref()
    }
    return { cancel: () => this.remove(entry) }
  }

  private remove(entry: Entry): void {
    this.entries.delete(entry)
    if (this.entries.size === 0 && this.tick !== undefined) {
      clearInterval(this.tick)
      this.tick = undefined
    }
  }

  private fire(): void {
    const now = this.now()
    for (const e of this.entries) {
      if (e.at > now) continue
      this.remove(e)
      try {
        e.fn()
      } catch {
        // A callback's failure is its own; the other entries still fire.
      }
    }
  }
}
