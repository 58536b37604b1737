/** `snapswarm keygen FILE`: a new cluster key (one per cluster, copied to every node). */
import { writeClusterKey } from '../p2p/admission.ts'
import type { CommandInput } from './command.ts'

export async function keygenCommand({ positionals }: CommandInput): Promise<number> {
  await writeClusterKey(positionals[0])
  process.stdout.write(`wrote cluster key ${positionals[0]} (mode 0600)\n`)
  return 0
}
