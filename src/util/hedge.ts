/**
 * The one hedged race: candidates asked in order, the next one started beside the newest when that
 * one stays silent for `hedgeMs`, so a silent candidate costs the hedge delay and not its timeout,
 * and the candidates are not all asked at once. The hedge delays share one CoarseTimer (no
 * `setTimeout` per candidate). Used for the frame sources of a read and for the peers asked for a
 * pending header.
 */
import type { CoarseTimeout, CoarseTimer } from './coarse-timer.ts'

/** One attempt of one candidate; `signal` is aborted when another attempt wins or the race ends. */
export interface HedgeRun {
  readonly index: number
  /** Started by the hedge delay, beside a candidate still running. */
  readonly hedge: boolean
  /** The same candidate asked once more after it asked for that in its miss. */
  readonly retry: boolean
  readonly signal: AbortSignal
}

/** What one attempt found: the answer, a miss (optionally: ask me once more), or nothing (cancelled). */
export type HedgeResult<R> = { readonly won: R } | { readonly miss: true; readonly retry?: boolean } | { readonly cancelled: true }

export interface HedgeOptions<R> {
  readonly count: number
  /** Infinity: never hedge, only move on after a miss. */
  readonly hedgeMs: number
  /** A candidate's own hedge delay, when it has one (else `hedgeMs`). */
  hedgeMsOf?(index: number): number | undefined
  readonly timer: CoarseTimer
  /** The caller gives up: the race rejects with its reason and every attempt is aborted. */
  readonly signal?: AbortSignal
  /** The reason attempts still running are aborted with once the race is decided. */
  supersede(): unknown
  /** Never rejects: every outcome of a candidate is a result (a rejection fails the whole race). */
  attempt(run: HedgeRun): Promise<HedgeResult<R>>
}

interface Running {
  readonly run: HedgeRun
  readonly ctl: AbortController
  timer: CoarseTimeout | undefined
}

/**
 * The first answer wins, the others are aborted; undefined when every candidate missed. The next
 * candidate starts when the newest one (the frontier) stays silent for `hedgeMs` or misses, or when
 * nothing runs any more; an earlier one missing while a later one runs starts nothing (the later
 * one covers it). A retry asked for by a miss runs the same candidate once more, unhedged.
 */
export function hedgedRace<R>(o: HedgeOptions<R>): Promise<{ value: R; run: HedgeRun } | undefined> {
  const signal = o.signal
  if (signal?.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    const running = new Set<Running>()
    let next = 0 // the first candidate not started yet
    let over = false
    const finish = (settle: () => void): void => {
      if (over) return
      over = true
      signal?.removeEventListener('abort', onAbort)
      for (const r of running) {
        r.timer?.cancel()
        r.ctl.abort(o.supersede())
      }
      running.clear()
      settle()
    }
    const onAbort = (): void => finish(() => reject(signal?.reason))
    signal?.addEventListener('abort', onAbort, { once: true })
    const onMiss = (index: number, retry: boolean, wantsRetry: boolean): void => {
      if (wantsRetry && !retry) {
        start(index, false, true)
        return
      }
      // Move on if this was the frontier (nothing later running), or if nothing runs at all.
      if (next !== index + 1 && running.size > 0) return
      if (next < o.count) start(next++, false, false)
      else if (running.size === 0) finish(() => resolve(undefined))
    }
    const start = (index: number, hedge: boolean, retry: boolean): void => {
      const ctl = new AbortController()
      const r: Running = { run: { index, hedge, retry, signal: ctl.signal }, ctl, timer: undefined }
      running.add(r)
      const hedgeMs = o.hedgeMsOf?.(index) ?? o.hedgeMs
      if (index + 1 < o.count && Number.isFinite(hedgeMs)) {
        r.timer = o.timer.after(hedgeMs, () => {
          r.timer = undefined
          // Only the frontier hedges: a later candidate already running covers this one.
          if (!over && running.has(r) && next === index + 1) start(next++, true, false)
        })
      }
      o.attempt(r.run).then(
        (result) => {
          r.timer?.cancel()
          running.delete(r)
          if (over || 'cancelled' in result) return // a late answer after another won: ignored
          if ('won' in result) finish(() => resolve({ value: result.won, run: r.run }))
          else onMiss(index, retry, result.retry === true)
        },
        (err: unknown) => finish(() => reject(err)),
      )
    }
    if (o.count === 0) finish(() => resolve(undefined))
    else start(next++, false, false)
  })
}
