/** `snapswarm trace`: a stored access trace shown as text or JSON; a damaged or missing one is a coded error. */
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, before, test } from 'node:test'
import { randomBuildId } from '../../src/format/uuid.ts'
import { encodeTrace } from '../../src/prefetch/trace.ts'
import { EXIT } from '../../src/cli/exit-codes.ts'
import { runCli } from '../../bench/lib/cli.ts'

let dir: string
let bucket: string
const id = randomBuildId()
const trace = { buildId: id, kind: 'memfile' as const, size: 16 * 1024 * 1024, entries: [7, 0, 3].map((f, i) => ({ offset: f * 2 * 1024 * 1024 + 4096, ms: i * 5 })) }

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-trace-cmd-'))
  bucket = join(dir, 'bucket')
  await mkdir(join(bucket, id), { recursive: true })
  await writeFile(join(bucket, id, 'memfile.prefetch'), encodeTrace(trace))
})

after(() => rm(dir, { recursive: true, force: true }))

test('snapswarm trace --json prints every entry of the stored trace', async () => {
  const r = await runCli(['trace', '--storage', pathToFileURL(bucket).href, id, '--json'])
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout.toString()), { ...trace, count: 3 })
})

test('snapswarm trace prints a table of the entries in first-read order', async () => {
  const r = await runCli(['trace', '--storage', pathToFileURL(bucket).href, id])
  assert.equal(r.code, 0, r.stderr)
  const text = r.stdout.toString()
  assert.match(text, new RegExp(`build ${id} memfile, file size 16777216`))
  assert.match(text, /3 frames in first-read order/)
  assert.match(text, /\n {4}0 {6}14684160 {9}0\n {4}1 {10}4096 {9}5\n/)
})

test('a damaged trace is ERR_FORMAT, a missing one ERR_NOT_FOUND, each one line with its exit status', async () => {
  const other = randomBuildId()
  await mkdir(join(bucket, other), { recursive: true })
  const bytes = Buffer.from(encodeTrace({ ...trace, buildId: other }))
  bytes[bytes.length - 1] ^= 1
  await writeFile(join(bucket, other, 'memfile.prefetch'), bytes)
  const bad = await runCli(['trace', '--storage', pathToFileURL(bucket).href, other])
  assert.equal(bad.code, EXIT.integrity)
  assert.match(bad.stderr, /^snapswarm: ERR_FORMAT: trace: SHA-256 does not match its contents\n$/)
  const missing = await runCli(['trace', '--storage', pathToFileURL(bucket).href, id, '--kind', 'rootfs'])
  assert.equal(missing.code, EXIT.notFound)
  assert.match(missing.stderr, /^snapswarm: ERR_NOT_FOUND: build .* has no access trace for rootfs/)
})
