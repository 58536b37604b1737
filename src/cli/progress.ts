/**
 * A progress bar for long operations, drawn on stderr only when it is a TTY or `--progress` asks for
 * it (scripts get clean output). On a terminal the line is redrawn in place at most every 100 ms;
 * elsewhere (a log) each redraw is its own line, at most one a second.
 */
import type { GetOptions, ObjectStore } from '../storage/store.ts'

export class ProgressBar {
  private readonly label: string
  private readonly total: number
  private readonly enabled: boolean
  private readonly started = performance.now()
  private lastDraw = 0

  constructor(label: string, total: number, enabled = process.stderr.isTTY === true) {
    this.label = label
    this.total = Math.max(1, total)
    this.enabled = enabled
  }

  update(done: number, extra = ''): void {
    if (!this.enabled) return
    const now = performance.now()
    if (now - this.lastDraw < (process.stderr.isTTY ? 100 : 1000) && done < this.total) return
    this.lastDraw = now
    const frac = Math.min(1, done / this.total)
    const width = 30
    const filled = Math.round(frac * width)
    const secs = (now - this.started) / 1000
    const rate = secs > 0 ? done / secs / 1e6 : 0
    const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`
    const line = `${this.label} [${bar}] ${(frac * 100).toFixed(0)}% ${rate.toFixed(0)} MB/s ${extra}`
    process.stderr.write(process.stderr.isTTY ? `\r${line}\x1b[K` : `${line.trimEnd()}\n`)
  }

  done(): void {
    if (this.enabled && process.stderr.isTTY) process.stderr.write('\n')
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

/** Progress is drawn when stderr is a terminal, or when `--progress` asks for it anyway. */
export function progressWanted(values: Record<string, unknown>): boolean {
  return values.progress === true || process.stderr.isTTY === true
}

/** `store`, counting the bytes its reads return (for a progress bar over a whole-store scan). */
export function countingStore(store: ObjectStore, onBytes: (total: number) => void): ObjectStore {
  let total = 0
  const add = (bytes: Uint8Array) => {
    total += bytes.byteLength
    onBytes(total)
    return bytes
  }
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'getRange') return (name: string, offset: number, length: number, signal?: AbortSignal) => target.getRange(name, offset, length, signal).then(add)
      if (prop === 'get') return (name: string, opts?: GetOptions) => target.get(name, opts).then(add)
      const v = Reflect.get(target, prop, receiver)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
}
