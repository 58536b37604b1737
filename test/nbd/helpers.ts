/** Running the real NBD clients (libnbd-bin, python3-libnbd, qemu-utils) against a node's NBD socket. */
import { createHash } from 'node:crypto'
import { join } from 'node:path'

export { nbdsh, nbdUri, type Run, run, runOk } from '../../bench/lib/nbd-clients.ts'

export const socketOf = (dataDir: string) => join(dataDir, 'nbd.sock')

export const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

export async function startExport(api: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const res = await fetch(`${api}/v1/exports`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const json = (await res.json()) as Record<string, unknown>
  if (res.status !== 201) throw new Error(`POST /v1/exports answered ${res.status}: ${JSON.stringify(json)}`)
  return json
}

/** The value of one Prometheus sample (0 when absent). */
export async function metric(api: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${api}/metrics`)).text()
  const m = pattern.exec(text)
  return m ? Number(m[1]) : 0
}
