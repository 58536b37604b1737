/**
 * The 3-layer chain of push-read.test.ts on S3: pushed through the real CLI to moto's S3 server (with
 * S3's 5 MiB minimum for non-last parts, as AWS has), found only through the AWS environment
 * (AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); exact object names, no
 * multipart upload left, the data decodes with the stock CLIs, `inspect --verify` passes, and `read`
 * returns bytes identical to the model for random ranges.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { openStore } from '../../src/storage/url.ts'
import { runCli } from '../../bench/lib/cli.ts'
import { type S3Server, startS3Server } from '../../bench/lib/s3-server.ts'
import { checkRandomReads, pushChain } from './chain.ts'

const MiB = 1024 * 1024
let s3: S3Server
let dir: string

before(async () => {
  s3 = await startS3Server()
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-push-s3-'))
})
after(async () => {
  await s3?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

test('push a 3-layer chain to S3 via the AWS environment: object names, stock zstd -d / lz4 -t, verify, lazy reads equal the model', async () => {
  const bucket = await s3.createBucket('chain')
  const storage = `s3://${bucket}/builds`
  const model = await pushChain(storage, dir, s3.env)
  const [a, b, c] = model.ids
  assert.deepEqual(
    await s3.raw(bucket),
    [`${a}/memfile.header`, `${a}/memfile.zstd`, `${a}/snapfile`, `${b}/memfile`, `${b}/memfile.header`, `${c}/memfile.header`, `${c}/memfile.lz4`].map((n) => `builds/${n}`).sort(),
    'exactly the layout of the other backends, no claim, no multipart upload left',
  )
  const store = await openStore(storage, { s3: s3.storeOptions })
  try {
    const stored = await store.get(`${a}/memfile.zstd`)
    const plain = execFileSync('zstd', ['-d', '-q', '-c'], { input: stored, maxBuffer: 64 * MiB, stdio: ['pipe', 'pipe', 'pipe'] })
    assert.equal((await store.stat(`${a}/memfile.zstd`))?.metadata['uncompressed-size'], String(plain.byteLength))
    execFileSync('lz4', ['-t', '-q'], { input: await store.get(`${c}/memfile.lz4`), stdio: ['pipe', 'pipe', 'pipe'] })
  } finally {
    await store.close()
  }
  const inspect = await runCli(['inspect', '--storage', storage, c, '--json', '--verify'], { env: s3.env })
  assert.equal(inspect.code, 0, inspect.stderr)
  const j = JSON.parse(inspect.stdout.toString())
  assert.equal(j.memfile.header.builds.length, 3)
  assert.equal(j.memfile.verify.failures.length, 0)
  await checkRandomReads(storage, model, 6, s3.env)
})

test('a build pushed twice to S3: the second push is refused with ERR_BUILD_EXISTS and changes nothing', async () => {
  const bucket = await s3.createBucket('twice')
  const storage = `s3://${bucket}`
  const model = await pushChain(storage, dir, s3.env)
  const before = await s3.raw(bucket)
  const again = await runCli(['push', '--storage', storage, '--build-id', model.ids[0], '--memfile', join(dir, 'base.raw')], { env: s3.env })
  assert.notEqual(again.code, 0)
  assert.match(again.stderr, /ERR_BUILD_EXISTS/)
  assert.deepEqual(await s3.raw(bucket), before)
})

test('regression: a missing S3 bucket was ERR_STORAGE, now ERR_BUCKET_NOT_FOUND; no credentials, no server: one coded error line from the CLI', async () => {
  const id = '00000000-0000-4000-8000-000000000000'
  const noBucket = await runCli(['read', '--storage', 's3://no-such-bucket-x', id, 'memfile'], { env: s3.env })
  // Regression: a missing S3 bucket was ERR_STORAGE; it is ERR_BUCKET_NOT_FOUND (exit 3) as on GCS.
  assert.equal(noBucket.code, 3, noBucket.stderr)
  assert.match(noBucket.stderr, /ERR_BUCKET_NOT_FOUND: .*the bucket does not exist/)
  assert.equal(noBucket.stderr.trim().split('\n').length, 1, noBucket.stderr)
  // No key in the environment, no profile files, and no instance metadata service to ask.
  const env: NodeJS.ProcessEnv = { ...s3.env, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: '', AWS_EC2_METADATA_DISABLED: 'true' }
  env.AWS_SHARED_CREDENTIALS_FILE = join(dir, 'none')
  env.AWS_CONFIG_FILE = join(dir, 'none')
  const noKeys = await runCli(['read', '--storage', 's3://chain', id, 'memfile'], { env })
  assert.notEqual(noKeys.code, 0)
  assert.match(noKeys.stderr, /ERR_STORAGE: .*no AWS credentials found/)
  assert.equal(noKeys.stderr.trim().split('\n').length, 1, noKeys.stderr)
  // Port 1 on the loopback: nothing listens there.
  const noServer = await runCli(['read', '--storage', 's3://chain', id, 'memfile'], { env: { ...s3.env, AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:1' } })
  assert.notEqual(noServer.code, 0)
  assert.match(noServer.stderr, /ERR_STORAGE: .*endpoint unreachable: ECONNREFUSED/)
  assert.equal(noServer.stderr.trim().split('\n').length, 1, noServer.stderr)
})
