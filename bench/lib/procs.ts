/** Real `snapswarm node` processes for cluster tests: spawn, wait for the ready line, always kill. */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { CLI } from './cli.ts'

export interface NodeProc {
  readonly peerId: string
  readonly addrs: string[]
  readonly api: string
  readonly proc: ChildProcess
  stderr(): string
  /** SIGTERM and wait for a clean exit (announcements withdrawn). */
  stop(): Promise<number | null>
  /** SIGKILL: the node dies mid-whatever. */
  kill(): Promise<void>
}

const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL')
})

/** `readyMs`: how long the node may take to print its ready line (a loaded machine starting many nodes needs more). */
export async function startNode(args: string[], env: NodeJS.ProcessEnv = {}, readyMs = 20_000): Promise<NodeProc> {
  const proc = spawn(process.execPath, [CLI, 'node', '--log-level', 'info', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(proc)
  proc.once('exit', () => running.delete(proc))
  let err = ''
  proc.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-200_000)
  })
  let out = ''
  const ready = await new Promise<{ peerId: string; addrs: string[]; api: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`node did not get ready in ${readyMs / 1000} s: ${err}`))
    }, readyMs)
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const nl = out.indexOf('\n')
      if (nl >= 0) {
        clearTimeout(timer)
        resolve(JSON.parse(out.slice(0, nl)))
      }
    })
    proc.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`node exited with ${code} before ready: ${err}`))
    })
  })
  const exited = once(proc, 'exit')
  return {
    ...ready,
    proc,
    stderr: () => err,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      const [code] = await exited
      clearTimeout(timer)
      return code as number | null
    },
    async kill() {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      proc.kill('SIGKILL')
      await exited
    },
  }
}

export async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url)
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

export async function readRange(api: string, id: string, kind: string, start: number, end: number): Promise<{ status: number; bytes: Buffer; text: string }> {
  const res = await fetch(`${api}/v1/builds/${id}/${kind}`, { headers: { range: `bytes=${start}-${end}` } })
  const bytes = Buffer.from(await res.arrayBuffer())
  return { status: res.status, bytes, text: res.status >= 400 ? bytes.toString() : '' }
}

export async function pause(api: string, id: string, body: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${api}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

/** Poll until `fn` returns a truthy value or the bound passes. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
