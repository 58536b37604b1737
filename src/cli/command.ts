/**
 * One subcommand as data (name, arguments, flags with their defaults, examples, and a lazily loaded
 * implementation), turned into a commander command by `addCommand`. Keeping the table light (no
 * heavy imports until a command runs) keeps `--help` and startup fast.
 *
 * Implementations receive the flags under their long names (`values['frame-size']`), strings as
 * given on the command line (`intFlag` and friends in args.ts parse and check them), booleans as
 * `true` or absent, repeatable flags as arrays.
 */
import { type Command, Option } from 'commander'

export interface CommandInput {
  readonly values: Record<string, string | boolean | string[] | undefined>
  readonly positionals: string[]
}

export interface FlagSpec {
  /** commander syntax: `--out <dir>`, `--json`. */
  readonly flags: string
  readonly description: string
  /** What applies when the flag is absent, as the help shows it. */
  readonly default?: string
  /** The flag may be given more than once; the implementation gets every value, in order. */
  readonly multiple?: boolean
}

export interface CommandSpec {
  readonly name: string
  readonly summary: string
  /** Positional arguments in commander syntax: `<input>`, `<build-id>`. */
  readonly args?: readonly string[]
  readonly flags: readonly FlagSpec[]
  /** Shown under "Examples:" in the command's help. */
  readonly examples: readonly string[]
  /** Extra lines after the examples (modes, notes). */
  readonly notes?: string
  readonly run: (input: CommandInput) => Promise<number>
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}

function toOption(spec: FlagSpec): Option {
  const description = spec.default === undefined ? spec.description : `${spec.description} (default: ${spec.default})`
  const option = new Option(spec.flags, spec.multiple ? `${description}; repeatable` : description)
  if (spec.multiple) option.argParser(collect)
  return option
}

/** The parsed flags of `cmd`, keyed by long name without the dashes. */
function valuesOf(cmd: Command): CommandInput['values'] {
  const values: CommandInput['values'] = {}
  for (const o of cmd.options) {
    if (!o.long || o.long === '--help') continue
    values[o.long.slice(2)] = cmd.getOptionValue(o.attributeName())
  }
  return values
}

/**
 * Adds `spec` to `program`; its implementation's exit status is passed to `onStatus`. Thrown errors
 * go up to the caller of `parseAsync` (main.ts prints them as one line).
 */
export function addCommand(program: Command, spec: CommandSpec, onStatus: (status: number) => void): Command {
  const cmd = program.command(spec.name).description(spec.summary)
  for (const a of spec.args ?? []) cmd.argument(a)
  for (const f of spec.flags) cmd.addOption(toOption(f))
  const examples = spec.examples.map((e) => `  $ ${e}`).join('\n')
  cmd.addHelpText('after', `\nExamples:\n${examples}\n${spec.notes ? `\n${spec.notes.trimEnd()}\n` : ''}`)
  cmd.action(async (...args: unknown[]) => {
    const positionals = args.slice(0, spec.args?.length ?? 0).map(String)
    onStatus(await spec.run({ values: valuesOf(cmd), positionals }))
  })
  return cmd
}

/** `values` back into argv form, for implementations that parse argv themselves. */
export function toArgv(values: CommandInput['values']): string[] {
  const argv: string[] = []
  for (const [name, v] of Object.entries(values)) {
    if (v === undefined || v === false) continue
    if (v === true) argv.push(`--${name}`)
    else for (const one of Array.isArray(v) ? v : [v]) argv.push(`--${name}=${one}`)
  }
  return argv
}
