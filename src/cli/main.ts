#!/usr/bin/env node
/**
 * `snapswarm <command>`: the command-line contract other tools script against (issues 2-7). Every
 * failure is one clear line on stderr and a non-zero exit; never a stack trace (set SNAPSWARM_DEBUG=1
 * to see one).
 */
import { SnapswarmError } from '../format/errors.ts'
import { UsageError } from './args.ts'

type Command = (argv: string[]) => Promise<number>

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  pack: { summary: 'frame a local file into a single-layer build directory', load: async () => (await import('./pack-cmd.ts')).packCommand },
  unpack: { summary: 'reconstruct the virtual file of a packed build directory', load: async () => (await import('./pack-cmd.ts')).unpackCommand },
  inspect: {
    summary: 'show a header file, or a stored build with --storage [--verify]',
    load: async () => async (argv) =>
      argv.some((a) => a === '--storage' || a.startsWith('--storage='))
        ? (await import('./storage-cmds.ts')).inspectStoredCommand(argv)
        : (await import('./inspect-cmd.ts')).inspectCommand(argv),
  },
  push: { summary: 'upload one build (or a layered child) straight to storage', load: async () => (await import('./storage-cmds.ts')).pushCommand },
  node: { summary: 'run a cluster node: serve builds to peers, read lazily, pause and upload', load: async () => (await import('./node-cmd.ts')).nodeCommand },
  pause: { summary: "pause a build on a node (its API), announce it pending, upload it", load: async () => (await import('./node-cmd.ts')).pauseCommand },
  demo: { summary: 'run a local 3-node cluster: pause, resume while pending, switch over, verify', load: async () => (await import('./demo.ts')).demoCommand },
  keygen: {
    summary: 'write a new cluster key file (one per cluster, copied to every node)',
    load: async () => async (argv) => {
      const { writeClusterKey } = await import('../p2p/admission.ts')
      const { parse } = await import('./args.ts')
      const { positionals } = parse(argv, {}, 1)
      await writeClusterKey(positionals[0])
      process.stdout.write(`wrote cluster key ${positionals[0]} (mode 0600)\n`)
      return 0
    },
  },
  read: { summary: 'write bytes of a stored build file to stdout, reading lazily', load: async () => (await import('./storage-cmds.ts')).readCommand },
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  return `usage: snapswarm <command> [options]\n\ncommands:\n${lines.join('\n')}\n`
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage())
    return name ? 0 : 2
  }
  const entry = COMMANDS[name]
  if (!entry) throw new UsageError(`unknown command '${name}'; run 'snapswarm --help'`)
  return (await entry.load())(rest)
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  if (process.env.SNAPSWARM_DEBUG) console.error(err)
  const message = err instanceof Error ? err.message : String(err)
  const code = err instanceof SnapswarmError ? `${err.code}: ` : ''
  process.stderr.write(`snapswarm: ${code}${message}\n`)
  process.exitCode = err instanceof UsageError ? 2 : 1
}
