/** Running the real NBD clients (libnbd-bin, python3-libnbd, qemu-utils): shared by the NBD tests and the NBD bench. */
import { spawn } from 'node:child_process'

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

export function nbdUri(socket: string, exportName = ''): string {
  return `nbd+unix:///${exportName}?socket=${socket}`
}
