/**
 * Starts a real S3-compatible server for a test file: moto's server mode (the PyPI package
 * `moto[server]`, run by moto-s3-server.py so that concurrent create-only writes are decided atomically,
 * as AWS S3 does), on a free 127.0.0.1 port, with its own temp dir (moto spools large objects to files
 * there), and guarantees the process dies with the test run: stop()/kill() in `after`, plus a
 * synchronous kill on process exit for runs that end abruptly.
 *
 * The server: $SNAPSWARM_S3_SERVER, else ~/.cache/snapswarm-bin/moto-5.2.5/bin/moto_server (where
 * `.ci/run` installs it in a virtualenv); the launcher runs on that virtualenv's python.
 *
 * `raw(bucket)` lists everything the server holds for a bucket, straight from the S3 API: objects, and
 * multipart uploads in progress with each of their parts (`{key}#upload/{part}`), so "no orphan parts"
 * is checked on the server itself.
 */
import { existsSync, rmSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CreateBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command, ListPartsCommand, S3Client } from '@aws-sdk/client-s3'
import { startServerProc } from './server-proc.ts'

export const MOTO_VERSION = '5.2.5'
const READY_TIMEOUT_MS = 20_000
const LAUNCHER = fileURLToPath(new URL('./moto-s3-server.py', import.meta.url))
const CREDENTIALS = { accessKeyId: 'snapswarm-test', secretAccessKey: 'snapswarm-test-secret' }

export interface S3Server {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string
  port: number
  pid: number
  /** The AWS environment that points a `snapswarm` process (or the SDK) at this server. */
  env: Record<string, string>
  /** What `openStore(url, { s3 })` needs in process (the same as `env`, without touching process.env). */
  storeOptions: { endpoint: string; region: string; credentials: typeof CREDENTIALS }
  /** Creates an (empty) bucket; returns its name. */
  createBucket(name: string): Promise<string>
  /** Objects and in-progress multipart uploads with their parts, sorted (see the file comment). */
  raw(bucket: string): Promise<string[]>
  /** Multipart uploads in progress in a bucket (keys). */
  uploads(bucket: string): Promise<string[]>
  /** SIGTERM, then SIGKILL if it has not exited after 2 s; removes its temp dir. Idempotent. */
  stop(): Promise<void>
  /** SIGKILL at once (fault tests: the server dies mid-operation). Idempotent. */
  kill(): Promise<void>
}

export function s3ServerBinary(): string {
  const bin = process.env.SNAPSWARM_S3_SERVER ?? join(homedir(), '.cache', 'snapswarm-bin', `moto-${MOTO_VERSION}`, 'bin', 'moto_server')
  if (!existsSync(bin)) {
    throw new Error(
      `moto_server not found at ${bin}. Install it with \`python3 -m venv ~/.cache/snapswarm-bin/moto-${MOTO_VERSION} && ` +
        `~/.cache/snapswarm-bin/moto-${MOTO_VERSION}/bin/pip install 'moto[server]==${MOTO_VERSION}'\` ` +
        '(bash .ci/run does) or point SNAPSWARM_S3_SERVER at the binary.',
    )
  }
  return bin
}

/**
 * `minPartSize`: the server's minimum size of a non-last multipart part (S3's is 5 MiB, moto's default
 * too); the shared backend suite uses small parts, so its file lowers it. `checkCredentials`: the
 * server refuses (403) every key it does not know, which is every key (moto checks none by default).
 */
export async function startS3Server(opts: { minPartSize?: number; checkCredentials?: boolean } = {}): Promise<S3Server> {
  const bin = s3ServerBinary()
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-s3-'))
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir, MOTO_ALLOW_NONEXISTENT_REGION: 'true' }
  if (opts.minPartSize !== undefined) env.S3_UPLOAD_PART_MIN_SIZE = String(opts.minPartSize)
  if (opts.checkCredentials) env.INITIAL_NO_AUTH_ACTION_COUNT = '0'
  // moto's server through a launcher that makes create-only writes atomic (see moto-s3-server.py).
  const server = await startServerProc({
    name: 'moto_server',
    command: join(dirname(bin), 'python'),
    args: (port) => [LAUNCHER, '-H', '127.0.0.1', '-p', String(port)],
    env,
    readyPath: '/moto-api/',
    readyTimeoutMs: READY_TIMEOUT_MS,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  })
  const { endpoint } = server
  const storeOptions = { endpoint, region: 'us-east-1', credentials: CREDENTIALS }
  const sdk = new S3Client({ ...storeOptions, forcePathStyle: true, maxAttempts: 1 })
  return {
    endpoint,
    port: server.port,
    pid: server.pid,
    env: {
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    },
    storeOptions,
    createBucket: async (name) => {
      await sdk.send(new CreateBucketCommand({ Bucket: name }))
      return name
    },
    raw: (bucket) => rawListing(sdk, bucket),
    uploads: async (bucket) => (await listUploads(sdk, bucket)).map((u) => u.key).sort(),
    stop: async () => {
      sdk.destroy()
      await server.end('SIGTERM')
    },
    kill: () => server.end('SIGKILL'),
  }
}

async function listUploads(sdk: S3Client, bucket: string): Promise<{ key: string; uploadId: string }[]> {
  const out = await sdk.send(new ListMultipartUploadsCommand({ Bucket: bucket, MaxUploads: 1000 }))
  if (out.IsTruncated) throw new Error(`listing uploads of ${bucket}: more than 1000 (a test leaks uploads)`)
  return (out.Uploads ?? []).map((u) => ({ key: u.Key ?? '', uploadId: u.UploadId ?? '' }))
}

async function rawListing(sdk: S3Client, bucket: string): Promise<string[]> {
  const names: string[] = []
  let token: string | undefined
  do {
    const out = await sdk.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }))
    names.push(...(out.Contents ?? []).map((o) => o.Key ?? ''))
    token = out.IsTruncated ? out.NextContinuationToken : undefined
  } while (token)
  for (const u of await listUploads(sdk, bucket)) {
    names.push(`${u.key}#upload`)
    const parts = await sdk.send(new ListPartsCommand({ Bucket: bucket, Key: u.key, UploadId: u.uploadId, MaxParts: 1000 }))
    for (const p of parts.Parts ?? []) names.push(`${u.key}#upload/${p.PartNumber}`)
  }
  return names.sort()
}
