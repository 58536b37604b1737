/** Running the real NBD clients (libnbd-bin, python3-libnbd, qemu-utils) against a node's NBD socket. */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { join } from 'node:path'

export interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Run a program to its end (killed after `timeoutMs`), capturing its output. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20_000)
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** Like run, but a non-zero exit is an error carrying the program's stderr. */
export async function runOk(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return r.stdout
}

/** nbdsh runs the python3-libnbd bindings of the system python (not whatever python3 is first on PATH). */
export function nbdsh(script: string): Promise<Run> {
  return run('nbdsh', ['-c', script], { env: { PATH: `/usr/bin:${process.env.PATH}` } })
}

export const socketOf = (dataDir: string) => join(dataDir, 'nbd.sock')

export function nbdUri(socket: string, exportName = ''): string {
  return `nbd+unix:///${exportName}?socket=${socket}`
}

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
