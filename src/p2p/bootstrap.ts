/**
 * Bootstrap peers: dialled at start, redialled with exponential backoff (with jitter, capped) until
 * they answer, and again whenever the connection drops. Unlike libp2p's keep-alive reconnect queue it
 * never gives up: a cluster member that restarts after an hour must be found again without operator
 * action. One timer per unreachable target, none per connected one.
 */
import type { Logger } from '../obs/log.ts'
import { silentLogger } from '../obs/log.ts'
import { BOOTSTRAP_BACKOFF_FACTOR, BOOTSTRAP_BACKOFF_MAX_MS, BOOTSTRAP_BACKOFF_MIN_MS } from './constants.ts'
import { RateLimitedLog } from './rate-limited-log.ts'

export interface BootstrapDeps {
  /** Dial `addr`, resolve with the remote peer id once connected. */
  dial(addr: string, signal: AbortSignal): Promise<string>
  isConnected(peer: string): boolean
  /** Subscribe to "no connection left to `peer`"; returns the unsubscribe function. */
  onDisconnect(listener: (peer: string) => void): () => void
}

export interface BackoffOptions {
  minMs?: number
  maxMs?: number
  factor?: number
  /** Per dial attempt. */
  dialTimeoutMs?: number
}

interface Target {
  addr: string
  peer?: string
  attempt: number
  timer?: NodeJS.Timeout
  dialing: boolean
}

export class Bootstrapper {
  private readonly targets: Target[]
  private readonly deps: BootstrapDeps
  private readonly opts: Required<BackoffOptions>
  private readonly log: Logger
  /** An unreachable bootstrap node (or one that refuses our handshake): warn, once per address per interval. */
  private readonly warn: RateLimitedLog
  private readonly stopper = new AbortController()
  private unsubscribe: (() => void) | undefined

  constructor(addrs: readonly string[], deps: BootstrapDeps, opts: BackoffOptions = {}, log: Logger = silentLogger, warnIntervalMs?: number) {
    this.targets = addrs.map((addr) => ({ addr, attempt: 0, dialing: false }))
    this.deps = deps
    this.opts = {
      minMs: opts.minMs ?? BOOTSTRAP_BACKOFF_MIN_MS,
      maxMs: opts.maxMs ?? BOOTSTRAP_BACKOFF_MAX_MS,
      factor: opts.factor ?? BOOTSTRAP_BACKOFF_FACTOR,
      dialTimeoutMs: opts.dialTimeoutMs ?? 10_000,
    }
    this.log = log
    this.warn = new RateLimitedLog(log, warnIntervalMs)
  }

  start(): void {
    this.unsubscribe = this.deps.onDisconnect((peer) => this.onDisconnect(peer))
    for (const t of this.targets) void this.connect(t)
  }

  stop(): void {
    this.stopper.abort()
    this.unsubscribe?.()
    for (const t of this.targets) clearTimeout(t.timer)
  }

  /** Delay before retry number `attempt` (1-based): min·factor^(attempt-1), capped, with ±25 % jitter. */
  delayFor(attempt: number): number {
    const base = Math.min(this.opts.maxMs, this.opts.minMs * this.opts.factor ** (attempt - 1))
    return Math.round(base * (0.75 + Math.random() * 0.5))
  }

  private async connect(t: Target): Promise<void> {
    t.timer = undefined
    if (this.stopper.signal.aborted || t.dialing) return
    if (t.peer && this.deps.isConnected(t.peer)) return
    t.dialing = true
    try {
      const signal = AbortSignal.any([this.stopper.signal, AbortSignal.timeout(this.opts.dialTimeoutMs)])
      t.peer = await this.deps.dial(t.addr, signal)
      t.attempt = 0
      this.log.info({ addr: t.addr, peer: t.peer }, 'bootstrap peer connected')
    } catch (err) {
      t.attempt++
      const fields = { addr: t.addr, attempt: t.attempt, err: (err as Error).message }
      // Every attempt at debug; at warn once per address per interval (a down peer is redialled for ever).
      this.log.debug(fields, 'bootstrap dial failed')
      if (!this.stopper.signal.aborted) this.warn.warn(t.addr, fields, 'cannot reach bootstrap peer')
      this.schedule(t)
    } finally {
      t.dialing = false
    }
  }

  private schedule(t: Target): void {
    if (this.stopper.signal.aborted || t.timer) return
    t.timer = setTimeout(() => void this.connect(t), this.delayFor(Math.max(1, t.attempt)))
    t.timer.unref()
  }

  private onDisconnect(peer: string): void {
    for (const t of this.targets) {
      if (t.peer !== peer || t.dialing) continue
      t.attempt = Math.max(1, t.attempt)
      this.schedule(t)
    }
  }
}
