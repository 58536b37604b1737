/**
 * A storage emulator (fake-gcs-server, moto) as a child process for a test file or a benchmark: on a
 * free 127.0.0.1 port, its stderr kept (the last 4000 characters) for error messages, ready once an
 * HTTP GET of `readyPath` answers 2xx (bounded; fails fast when the process exits), and guaranteed to
 * die with the run: `end()` from `after`, plus a synchronous kill on process exit for runs that end
 * abruptly (`--test-force-exit`, a failed assertion in a hook).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export interface ServerProc {
  /** `http://127.0.0.1:PORT`. */
  readonly endpoint: string
  readonly port: number
  readonly pid: number
  /** `signal` (SIGTERM: SIGKILL if it has not exited after 2 s), then `cleanup`. Idempotent. */
  end(signal: NodeJS.Signals): Promise<void>
}

export interface ServerSpec {
  /** For error messages. */
  readonly name: string
  readonly command: string
  readonly args: (port: number) => string[]
  readonly env?: NodeJS.ProcessEnv
  /** A path that answers 2xx once the server is up. */
  readonly readyPath: string
  readonly readyTimeoutMs: number
  /** Runs after the process has exited (also on an abrupt exit of this process): e.g. remove its temp dir. */
  readonly cleanup?: () => void
}

const running = new Map<ChildProcess, (() => void) | undefined>()
process.once('exit', () => {
  for (const [child, cleanup] of running) {
    child.kill('SIGKILL')
    cleanup?.()
  }
})

export async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as { port: number }
  await new Promise((resolve) => srv.close(resolve))
  return port
}

/** Starts the server and waits until it answers; a server that does not is killed and the error names it. */
export async function startServerProc(spec: ServerSpec): Promise<ServerProc> {
  const port = await freePort()
  const child = spawn(spec.command, spec.args(port), { env: spec.env, stdio: ['ignore', 'ignore', 'pipe'] })
  running.set(child, spec.cleanup)
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  exited.then(() => running.delete(child))
  const endpoint = `http://127.0.0.1:${port}`
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000)
    await exited
    clearTimeout(timer)
    spec.cleanup?.()
  }
  try {
    await waitReady(spec, `${endpoint}${spec.readyPath}`, child, () => stderr)
  } catch (err) {
    await end('SIGKILL')
    throw err
  }
  return { endpoint, port, pid: child.pid!, end }
}

/** Polls `url` until the server answers; bounded, and fails fast if the process exits. */
async function waitReady(spec: ServerSpec, url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + spec.readyTimeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${spec.name} exited (code ${child.exitCode}): ${stderr()}`)
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) })
      await res.arrayBuffer()
      if (res.ok) return
    } catch {
      // not listening yet
    }
    await sleep(50)
  }
  throw new Error(`${spec.name} did not answer on ${url} within ${spec.readyTimeoutMs} ms: ${stderr()}`)
}
