/**
 * Starts fake-gcs-server (in-memory backend) on a free 127.0.0.1 port for a test file and guarantees
 * the process dies with the test run (server-proc.ts: stop()/kill() in `after`, plus a synchronous kill
 * on process exit for runs that end abruptly).
 *
 * The binary: $FAKE_GCS_SERVER, else $HOME/.cache/snapswarm-bin/fake-gcs-server (where `.ci/run` installs
 * it), else `fake-gcs-server` on the PATH.
 */
import { statSync } from 'node:fs'
import { homedir } from 'node:os'
import { delimiter, join } from 'node:path'
import { startServerProc } from './server-proc.ts'

export const FAKE_GCS_VERSION = 'v1.55.1'
const BIN_NAME = 'fake-gcs-server'
const READY_TIMEOUT_MS = 10_000

export interface FakeGcs {
  /** `http://127.0.0.1:PORT`, for `gcsEndpoint`. */
  endpoint: string
  port: number
  /** A bucket created at start. */
  bucket: string
  /** `gs://{bucket}`. */
  url: string
  pid: number
  /** Creates another (empty) bucket; returns its name. */
  createBucket(name: string): Promise<string>
  /** Every object name in a bucket, straight from the JSON API (upload temporaries included), sorted. */
  objects(bucket: string): Promise<string[]>
  /** Deletes one object behind the store's back. */
  deleteObject(bucket: string, name: string): Promise<void>
  /** SIGTERM, then SIGKILL if it has not exited after 2 s. Idempotent. */
  stop(): Promise<void>
  /** SIGKILL at once (fault tests: the server dies mid-operation). Idempotent. */
  kill(): Promise<void>
}

/** Where the emulator is looked for, in order; an explicit $FAKE_GCS_SERVER is the only candidate. */
export function fakeGcsCandidates(env: NodeJS.ProcessEnv = process.env, home = env.HOME || homedir()): string[] {
  if (env.FAKE_GCS_SERVER) return [env.FAKE_GCS_SERVER]
  const onPath = (env.PATH ?? '').split(delimiter).filter((d) => d !== '').map((d) => join(d, BIN_NAME))
  return [join(home, '.cache', 'snapswarm-bin', BIN_NAME), ...onPath]
}

export function fakeGcsBinary(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = fakeGcsCandidates(env)
  const found = candidates.find(isExecutableFile)
  if (found) return found
  const cache = join(env.HOME || homedir(), '.cache', 'snapswarm-bin')
  throw new Error(
    `fake-gcs-server not found (looked at ${candidates.join(', ')}). Install it with ` +
      `\`GOBIN=${cache} go install github.com/fsouza/fake-gcs-server@${FAKE_GCS_VERSION}\` ` +
      '(what `bash .ci/run` does) or point FAKE_GCS_SERVER at the binary.',
  )
}

function isExecutableFile(path: string): boolean {
  try {
    const st = statSync(path)
    return st.isFile() && (st.mode & 0o111) !== 0
  } catch {
    return false
  }
}

export async function startFakeGcs(bucket = 'snapswarm-test'): Promise<FakeGcs> {
  const bin = fakeGcsBinary()
  const server = await startServerProc({
    name: 'fake-gcs-server',
    command: bin,
    args: (port) => ['-scheme', 'http', '-host', '127.0.0.1', '-port', String(port), '-backend', 'memory', '-log-level', 'error'],
    readyPath: '/storage/v1/b',
    readyTimeoutMs: READY_TIMEOUT_MS,
  })
  const { endpoint } = server
  try {
    const createBucket = (name: string) => createBucketAt(endpoint, name)
    await createBucket(bucket)
    return {
      endpoint,
      port: server.port,
      bucket,
      url: `gs://${bucket}`,
      pid: server.pid,
      createBucket,
      objects: (b) => listObjects(endpoint, b),
      deleteObject: async (b, name) => {
        const res = await fetch(`${endpoint}/storage/v1/b/${b}/o/${encodeURIComponent(name)}`, { method: 'DELETE' })
        await res.arrayBuffer()
        if (!res.ok) throw new Error(`deleting ${b}/${name}: HTTP ${res.status}`)
      },
      stop: () => server.end('SIGTERM'),
      kill: () => server.end('SIGKILL'),
    }
  } catch (err) {
    await server.end('SIGKILL')
    throw err
  }
}

async function createBucketAt(endpoint: string, name: string): Promise<string> {
  const res = await fetch(`${endpoint}/storage/v1/b?project=test`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  })
  const body = await res.text()
  if (!res.ok) throw new Error(`creating bucket ${name}: HTTP ${res.status} ${body}`)
  return name
}

async function listObjects(endpoint: string, bucket: string): Promise<string[]> {
  const names: string[] = []
  let token = ''
  do {
    const res = await fetch(`${endpoint}/storage/v1/b/${bucket}/o?pageToken=${encodeURIComponent(token)}`)
    if (!res.ok) throw new Error(`listing ${bucket}: HTTP ${res.status} ${await res.text()}`)
    const body = (await res.json()) as { items?: { name: string }[]; nextPageToken?: string }
    names.push(...(body.items ?? []).map((i) => i.name))
    token = body.nextPageToken ?? ''
  } while (token !== '')
  return names.sort()
}
