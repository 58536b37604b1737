/**
 * Warnings about other nodes (a dial that fails, a handshake refused, a bootstrap node that does not
 * answer) are logged at most once per key (a peer id or a remote address) per interval: a node
 * redialling an unreachable member every few seconds must not fill the log. The line that ends a quiet
 * interval says how many were suppressed meanwhile. The set of keys is bounded: past `maxKeys` the
 * oldest are forgotten (at worst one extra line for a forgotten key).
 */
import { CLUSTER_DEFAULTS } from '../config/schema.ts'
import type { Logger } from '../obs/log.ts'

/** Default interval between two lines about the same peer or address. */
export const WARN_INTERVAL_MS = CLUSTER_DEFAULTS.warnIntervalMs
const MAX_KEYS = 4096

interface Slot {
  lastAt: number
  suppressed: number
}

export class RateLimitedLog {
  private readonly log: Logger
  private readonly intervalMs: number
  private readonly maxKeys: number
  /** Least recently logged first (a logged key moves to the end). */
  private readonly slots = new Map<string, Slot>()

  constructor(log: Logger, intervalMs = WARN_INTERVAL_MS, maxKeys = MAX_KEYS) {
    this.log = log
    this.intervalMs = intervalMs
    this.maxKeys = maxKeys
  }

  /** Log `msg` at warn for `key` unless a line for `key` went out less than the interval ago; true if logged. */
  warn(key: string, fields: Record<string, unknown>, msg: string): boolean {
    const now = performance.now()
    const slot = this.slots.get(key)
    if (slot && now - slot.lastAt < this.intervalMs) {
      slot.suppressed++
      return false
    }
    const suppressed = slot?.suppressed ?? 0
    this.slots.delete(key)
    this.slots.set(key, { lastAt: now, suppressed: 0 })
    if (this.slots.size > this.maxKeys) this.slots.delete(this.slots.keys().next().value as string)
    this.log.warn(suppressed > 0 ? { ...fields, suppressed } : fields, msg)
    return true
  }
}
