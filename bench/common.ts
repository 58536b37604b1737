/** Shared bench plumbing: one JSON line per figure, ratios against a baseline measured in the same run. */
import { spawnSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Figure {
  metric: string
  value: number
  unit: string
  baseline: number | null
  ratio: number | null
  target?: string
}

export const figures: Figure[] = []

export function emit(metric: string, value: number, unit: string, baseline: number | null, target?: string): Figure {
  const ratio = baseline && baseline !== 0 ? round(value / baseline) : null
  const fig: Figure = { metric, value: round(value), unit, baseline: baseline === null ? null : round(baseline), ratio }
  if (target) fig.target = target
  figures.push(fig)
  console.log(JSON.stringify(fig))
  return fig
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000
}

export function benchDir(name: string): string {
  return mkdtempSync(join(process.env.SNAPSWARM_BENCH_DIR ?? tmpdir(), `snapswarm-bench-${name}-`))
}

/** Wall time of an external command in seconds (fails loudly if the command fails). */
export function timeCommand(cmd: string, args: string[]): number {
  const t0 = performance.now()
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  const secs = (performance.now() - t0) / 1000
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString()}`)
  return secs
}

/** Best of n: the least-disturbed run on a shared 2-core machine. */
export async function bestOf(n: number, fn: () => Promise<number> | number): Promise<number> {
  let best = Number.POSITIVE_INFINITY
  for (let i = 0; i < n; i++) best = Math.min(best, await fn())
  return best
}

export const MB = 1e6
export const MiB = 1024 * 1024
