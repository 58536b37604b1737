#!/usr/bin/env node
/**
 * `snapswarm <command>`: the command-line contract other tools script against. Parsing, `--help` and
 * `--version` are commander's; the subcommands are the table in specs.ts. Every failure is one line
 * `snapswarm: ERR_X: message` on stderr and an exit status from the one table in exit-codes.ts;
 * never a stack trace (set SNAPSWARM_DEBUG=1 to see one).
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { addCommand } from './command.ts'
import { EXIT, InterruptedError, StdoutClosedError, UsageError, errorLine, exitStatusFor, exitTableHelp, toCliError } from './exit-codes.ts'
import { COMMAND_SPECS } from './specs.ts'

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

let status: number = EXIT.ok

function buildProgram(): Command {
  const program = new Command('snapswarm')
    .description('Peer-to-peer distribution of framed, compressed VM snapshots (memfile, rootfs) over object storage and libp2p.')
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help (also: snapswarm help <command>)')
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .showSuggestionAfterError(true)
  for (const spec of COMMAND_SPECS) {
    addCommand(program, spec, (s) => {
      status = s
    })
  }
  program.addHelpText('after', `\n${exitTableHelp()}`)
  return program
}

/** A commander parse error as our usage error, or null for help/version (already printed: success). */
function fromCommander(err: CommanderError, argv: string[]): UsageError | null {
  if (err.exitCode === 0) return null
  const name = COMMAND_SPECS.find((s) => argv.includes(s.name))?.name
  const hint = name ? `snapswarm ${name} --help` : 'snapswarm --help'
  return new UsageError(`${err.message.replace(/^error:\s*/, '').replace(/\.$/, '')}; run ${hint}`)
}

/**
 * A reader that closes our stdout early (`| head`) must not crash us with an unhandled 'error' event;
 * `read` sees it through its write callbacks (StdoutClosedError) and ends quietly.
 */
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') process.stderr.write(errorLine(toCliError(err)))
})

async function main(argv: string[]): Promise<number> {
  try {
    // Without a (known) command commander would print the whole help on stderr: one line says it.
    const names = COMMAND_SPECS.map((s) => s.name)
    if (argv.length === 0) throw new UsageError(`no command given; run snapswarm --help (commands: ${names.join(', ')})`)
    if (argv[0] === 'help' && argv[1] !== undefined && !names.includes(argv[1])) {
      throw new UsageError(`unknown command '${argv[1]}'; commands: ${names.join(', ')}`)
    }
    await buildProgram().parseAsync(argv, { from: 'user' })
    return status
  } catch (raw) {
    if (process.env.SNAPSWARM_DEBUG) console.error(raw)
    if (raw instanceof StdoutClosedError) return EXIT.ok
    const err = raw instanceof CommanderError ? fromCommander(raw, argv) : toCliError(raw)
    if (err === null) return EXIT.ok
    process.stderr.write(errorLine(err))
    if (err instanceof InterruptedError) {
      // Cleanup is done; output a stalled reader never took must not keep the process alive.
      const code = err.signal === 'SIGTERM' ? 143 : 130
      process.stderr.write('', () => process.exit(code))
      return code
    }
    return exitStatusFor(err.code)
  }
}

process.exitCode = await main(process.argv.slice(2))
