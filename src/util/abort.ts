/**
 * Waiting with an AbortSignal: the one abort race, the one deadline and the one interruptible sleep.
 * A caller that gives up stops its own wait, while work shared with other callers (a frame fetch
 * other readers wait on, a storage request the SDK cannot cancel) runs on. Abort listeners are always
 * removed when the wait ends, so a long-lived signal does not collect one per request.
 */

/** The error an aborted signal rejects with: its reason (AbortError / TimeoutError DOMException). */
export function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason
  return r instanceof Error ? r : new DOMException('The operation was aborted', 'AbortError')
}

/**
 * Settle with `p`, or reject with the signal's reason as soon as `signal` fires, whichever comes
 * first. The work behind `p` goes on; `onAbort` lets the caller cut what can be cut (a stream).
 */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined, onAbort?: () => void): Promise<T> {
  if (!signal) return p
  if (signal.aborted) {
    p.catch(() => {}) // the caller no longer waits; its outcome is someone else's to observe
    onAbort?.()
    return Promise.reject(abortReason(signal))
  }
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => {
      p.catch(() => {})
      onAbort?.()
      reject(abortReason(signal))
    }
    signal.addEventListener('abort', abort, { once: true })
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort))
  })
}

/** `signal` combined with a deadline of `ms`: every async call gets a default timeout. */
export function withDeadline(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(ms)
  return signal ? AbortSignal.any([signal, timeout]) : timeout
}

/** Resolve after `ms`; reject with the signal's reason as soon as it fires (the timer is cleared). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortReason(signal))
  return new Promise<void>((resolve, reject) => {
    const done = (): void => {
      signal?.removeEventListener('abort', abort)
      resolve()
    }
    const timer = setTimeout(done, ms)
    const abort = (): void => {
      clearTimeout(timer)
      reject(abortReason(signal as AbortSignal))
    }
    signal?.addEventListener('abort', abort, { once: true })
  })
}
