/** Typed, validated accessors of parsed flags; `parse` (node:util parseArgs) for commands that take raw argv. */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { parseBuildId } from '../format/uuid.ts'
import type { BuildId } from '../format/types.ts'
import { UsageError } from './exit-codes.ts'

export { UsageError }

export type Options = NonNullable<ParseArgsConfig['options']>

export function parse(argv: string[], options: Options, positionals: number) {
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  if (parsed.positionals.length !== positionals) {
    throw new UsageError(`expected ${positionals} positional argument(s), found ${parsed.positionals.length}`)
  }
  return { values: parsed.values as Record<string, string | boolean | string[] | undefined>, positionals: parsed.positionals }
}

/** A non-negative integer flag; accepts 2MiB-style suffixes (KiB, MiB, GiB) for sizes. */
export function intFlag(values: Record<string, unknown>, name: string, fallback: number): number {
  const raw = values[name]
  if (raw === undefined) return fallback
  const m = /^(\d+)\s*(k|ki|kib|m|mi|mib|g|gi|gib)?$/i.exec(String(raw))
  if (!m) throw new UsageError(`--${name}: expected a non-negative integer, found '${raw}'`)
  const unit = (m[2] ?? '').toLowerCase()[0]
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1
  const n = Number(m[1]) * mult
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name}: value too large: '${raw}'`)
  return n
}

export function choiceFlag<T extends string>(values: Record<string, unknown>, name: string, choices: readonly T[], fallback: T): T {
  const raw = values[name]
  if (raw === undefined) return fallback
  if (!choices.includes(raw as T)) throw new UsageError(`--${name}: expected one of ${choices.join('|')}, found '${raw}'`)
  return raw as T
}

export function buildIdFlag(values: Record<string, unknown>, name: string): BuildId | undefined {
  const raw = values[name]
  if (raw === undefined) return undefined
  try {
    return parseBuildId(String(raw))
  } catch {
    throw new UsageError(`--${name}: expected a UUID, found '${raw}'`)
  }
}

/** A positional build id; `name` is how the usage shows it (`<build-id>`). */
export function buildIdArg(raw: string | undefined, name: string): BuildId {
  try {
    return parseBuildId(String(raw))
  } catch {
    throw new UsageError(`${name}: expected a UUID, found '${raw}'`)
  }
}

/** A positional file kind. */
export function kindArg(raw: string | undefined, name = '<kind>'): 'memfile' | 'rootfs' {
  if (raw !== 'memfile' && raw !== 'rootfs') throw new UsageError(`${name}: expected memfile or rootfs, found '${raw}'`)
  return raw
}

export function requiredString(values: Record<string, unknown>, name: string): string {
  const raw = values[name]
  if (typeof raw !== 'string' || raw === '') throw new UsageError(`--${name} is required`)
  return raw
}
