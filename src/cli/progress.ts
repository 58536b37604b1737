/**
 * A progress bar for long operations, drawn on stderr only when it is a TTY (scripts get clean
 * output). Redraws at most every 100 ms.
 */
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
    if (now - this.lastDraw < 100 && done < this.total) return
    this.lastDraw = now
    const frac = Math.min(1, done / this.total)
    const width = 30
    const filled = Math.round(frac * width)
    const secs = (now - this.started) / 1000
    const rate = secs > 0 ? done / secs / 1e6 : 0
    const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`
    process.stderr.write(`\r${this.label} [${bar}] ${(frac * 100).toFixed(0)}% ${rate.toFixed(0)} MB/s ${extra}\x1b[K`)
  }

  done(): void {
    if (this.enabled) process.stderr.write('\n')
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
