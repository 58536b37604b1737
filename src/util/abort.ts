/**
 * Waiting with an AbortSignal without cancelling the thing waited on: a caller that gives up stops
 * its own wait, while a fetch shared with other readers runs on (DESIGN §7). Listeners are always
 * removed when the wait ends (STYLE "Avoid": abort listeners added per request and never removed).
 */

/** Settle with `p`, or reject with `signal.reason` as soon as `signal` fires, whichever comes first. */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p
  if (signal.aborted) {
    p.catch(() => {}) // the caller no longer waits; its outcome is someone else's to observe
    return Promise.reject(signal.reason)
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}

/** `signal` combined with a deadline: STYLE asks for a default timeout on every async call. */
export function withDeadline(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(ms)
  return signal ? AbortSignal.any([signal, timeout]) : timeout
}
