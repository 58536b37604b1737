/**
 * Errors of the read path. Named classes with a stable `code`; callers branch on
 * `code`. Aborts are not wrapped: a caller whose signal fired gets `signal.reason`, as with any Web API.
 */
import { SnapswarmError } from '../errors.ts'

/** Every source was tried for a frame and none produced verified bytes. `attempts` says why, per source. */
export class FrameUnavailableError extends SnapswarmError {
  readonly attempts: readonly string[]
  constructor(what: string, attempts: readonly string[]) {
    super('ERR_FRAME_UNAVAILABLE', `no source produced a verified ${what}: ${attempts.join('; ') || 'no sources configured'}`)
    this.attempts = attempts
  }
}

/** The chunk cache was closed (or the build file evicted) while a read still needed it. */
export class CacheClosedError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_CACHE_CLOSED', message)
  }
}
