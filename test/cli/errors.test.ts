/**
 * The command line's contract, through the real CLI process: every subcommand's --help, --version,
 * and each documented failure as exactly one line `snapswarm: ERR_X: …` on stderr with the exit
 * status the one table (src/cli/exit-codes.ts) gives its code. Real files, a real fs store, a real
 * fake-gcs-server, real sockets; the node's refusals come from a real HTTP server on 127.0.0.1.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { createServer as createTcpServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { EXIT_TABLE, exitStatusFor } from '../../src/cli/exit-codes.ts'
import { COMMAND_SPECS } from '../../src/cli/specs.ts'
import { writeVmData } from '../../src/util/vmdata.ts'
import { type CliResult, runCli } from '../../bench/lib/cli.ts'
import { type FakeGcs, startFakeGcs } from '../../bench/lib/fake-gcs.ts'

let dir: string
let store: string
let input: string
const built = randomUUID()
let gcs: FakeGcs
/** A real HTTP server answering like a node's API would refuse: status and JSON body per build id. */
let api: Server
let apiUrl: string
const refusals = new Map<string, { status: number; body: Record<string, unknown> }>()

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-cli-errors-'))
  store = join(dir, 'store')
  input = join(dir, 'memfile')
  await writeVmData(input, 3 * 1024 * 1024, 7)
  const pushed = await runCli(['push', '--storage', `file://${store}`, '--build-id', built, '--memfile', input])
  assert.equal(pushed.code, 0, pushed.stderr)
  gcs = await startFakeGcs()
  api = createServer((req, res) => {
    const id = req.url?.split('/').at(-1) ?? ''
    const r = refusals.get(id) ?? { status: 404, body: { error: 'ERR_NOT_FOUND', message: 'no such route' } }
    // After a 202 the build's state: `final` in the body (default: the upload failed).
    const state = r.body.final ?? 'failed'
    const answer = req.method === 'GET' && r.status === 202 ? { status: 200, body: { id, state, error: state === 'failed' ? 'storage refused the part' : undefined } } : r
    req.resume()
    req.on('end', () => res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body)))
  })
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r))
  apiUrl = `http://127.0.0.1:${(api.address() as { port: number }).port}`
})

after(async () => {
  await new Promise((r) => api.close(r))
  await gcs.stop()
  await rm(dir, { recursive: true, force: true })
})

/** A 127.0.0.1 port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createTcpServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

/** A 127.0.0.1 port held by a listener until `release()`. */
async function busyPort(): Promise<{ port: number; release: () => Promise<unknown> }> {
  const s = createTcpServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  return { port: (s.address() as { port: number }).port, release: () => new Promise((r) => s.close(r)) }
}

function assertOneLine(r: CliResult, code: string, status: number, what: string): string {
  const lines = r.stderr.split('\n').filter((l) => l !== '')
  assert.equal(lines.length, 1, `${what}: exactly one stderr line, found ${JSON.stringify(r.stderr)}`)
  assert.match(lines[0], new RegExp(`^snapswarm: ${code}: \\S`), `${what}: ${lines[0]}`)
  assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`)
  assert.equal(exitStatusFor(code), status, `${what}: the table gives ${code} status ${status}`)
  assert.equal(r.code, status, `${what}: exit status (stderr: ${lines[0]})`)
  return lines[0]
}

test('every subcommand answers --help and -h with exit 0, listing each of its flags, defaults and an example; help <cmd> shows the same', async () => {
  for (const spec of COMMAND_SPECS) {
    const long = await runCli([spec.name, '--help'])
    assert.equal(long.code, 0, `${spec.name} --help: ${long.stderr}`)
    const text = long.stdout.toString()
    assert.match(text, new RegExp(`^Usage: snapswarm ${spec.name} `), spec.name)
    for (const f of spec.flags) {
      const name = f.flags.split(/[ ,]/)[0]
      assert.ok(text.includes(name), `${spec.name} --help lists ${name}`)
      if (f.default !== undefined) assert.ok(text.replace(/\s+/g, ' ').includes(`(default: ${f.default})`), `${spec.name} --help: ${name} shows its default`)
    }
    assert.match(text, /Examples:\n {2}\$ snapswarm /, `${spec.name} --help has an example`)
    const short = await runCli([spec.name, '-h'])
    assert.equal(short.code, 0)
    assert.equal(short.stdout.toString(), text, `${spec.name} -h`)
    const viaHelp = await runCli(['help', spec.name])
    assert.equal(viaHelp.code, 0)
    assert.equal(viaHelp.stdout.toString(), text, `help ${spec.name}`)
  }
  const top = await runCli(['--help'])
  assert.equal(top.code, 0)
  for (const spec of COMMAND_SPECS) assert.match(top.stdout.toString(), new RegExp(`\\n {2}${spec.name} `), `--help lists ${spec.name}`)
  for (const row of EXIT_TABLE) assert.match(top.stdout.toString(), new RegExp(`\\n +${row.status} {2}`), `--help shows exit status ${row.status}`)
})

test('--version prints the package.json version', async () => {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  for (const flag of ['--version', '-V']) {
    const r = await runCli([flag])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.toString(), `${pkg.version}\n`)
  }
})

test('the README documents the same exit status table as the code', async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
  for (const row of EXIT_TABLE) {
    assert.match(readme, new RegExp(`\\| ${row.status} \\|`), `README exit table row ${row.status}`)
    for (const code of row.codes) assert.ok(readme.includes(code), `README names ${code}`)
  }
})

interface Failure {
  what: string
  args: string[] | (() => Promise<string[]> | string[])
  code: string
  status: number
  /** Further checks of the one line. */
  line?: RegExp
  /** Checked after the run (nothing created, …). */
  check?: () => Promise<void> | void
}

const unknownId = randomUUID()
const FAILURES: Failure[] = [
  { what: 'unknown option', args: ['pack', 'x.raw', '--bogus'], code: 'ERR_USAGE', status: 2, line: /unknown option '--bogus'.*snapswarm pack --help/ },
  { what: 'unknown command', args: ['frobnicate'], code: 'ERR_USAGE', status: 2, line: /unknown command 'frobnicate'/ },
  { what: 'no command', args: [], code: 'ERR_USAGE', status: 2 },
  { what: 'help for an unknown command', args: ['help', 'frobnicate'], code: 'ERR_USAGE', status: 2, line: /unknown command 'frobnicate'/ },
  { what: 'missing argument', args: ['read', '--storage', 'file:///tmp'], code: 'ERR_USAGE', status: 2, line: /missing required argument 'build-id'/ },
  {
    what: 'regression: read named flags that do not exist (--id) for a bad build id',
    args: () => ['read', '--storage', `file://${store}`, 'not-a-uuid', 'memfile'],
    code: 'ERR_USAGE',
    status: 2,
    line: /^snapswarm: ERR_USAGE: <build-id>: expected a UUID, found 'not-a-uuid'$/,
  },
  {
    what: 'regression: read named flags that do not exist (--kind) for a bad kind',
    args: () => ['read', '--storage', `file://${store}`, built, 'swapfile'],
    code: 'ERR_USAGE',
    status: 2,
    line: /^snapswarm: ERR_USAGE: <kind>: expected memfile or rootfs, found 'swapfile'$/,
  },
  {
    what: 'regression: --storage file:store3 wrote to /store3; now refused with the absolute URL meant',
    args: ['read', '--storage', 'file:snapswarm-store3-never', randomUUID(), 'memfile'],
    code: 'ERR_INVALID_ARGUMENT',
    status: 2,
    line: /relative path.*did you mean file:\/\/\/.*snapswarm-store3-never\?/,
    check: () => assert.ok(!existsSync('/snapswarm-store3-never'), 'nothing created at the filesystem root'),
  },
  {
    what: 'regression: read --storage file:///nonexistent created directories before saying not found',
    args: () => ['read', '--storage', `file://${join(dir, 'nonexistent', 'x')}`, unknownId, 'memfile'],
    code: 'ERR_BUCKET_NOT_FOUND',
    status: 3,
    line: /storage directory .*nonexistent\/x does not exist/,
    check: () => assert.ok(!existsSync(join(dir, 'nonexistent')), 'the read created nothing'),
  },
  {
    what: 'regression: a file: store under /proc hung (a recursive mkdir there never returns)',
    args: () => ['push', '--storage', 'file:///proc/snapswarm-store', '--build-id', randomUUID(), '--memfile', input],
    code: 'ERR_INVALID_ARGUMENT',
    status: 2,
    line: /\/proc\/snapswarm-store is on the kernel's proc filesystem/,
  },
  {
    what: 'regression: a node data dir under /proc hung',
    args: () => ['node', '--storage', `file://${store}`, '--data-dir', '/proc/snapswarm-node/data', '--log-level', 'silent'],
    code: 'ERR_CONFIG',
    status: 2,
    line: /dataDir \/proc\/snapswarm-node\/data: on the kernel's proc filesystem/,
  },
  {
    what: 'regression: a missing build was ERR_NOT_FOUND exit 1 from read',
    args: () => ['read', '--storage', `file://${store}`, unknownId, 'memfile'],
    code: 'ERR_NOT_FOUND',
    status: 3,
    line: new RegExp(`build ${unknownId} is not in file://`),
  },
  {
    what: 'regression: a missing build was ERR_USAGE exit 2 from inspect --storage',
    args: () => ['inspect', '--storage', `file://${store}`, unknownId],
    code: 'ERR_NOT_FOUND',
    status: 3,
    line: new RegExp(`build ${unknownId} is not in file://`),
  },
  {
    what: 'a file kind the build does not have',
    args: () => ['read', '--storage', `file://${store}`, built, 'rootfs'],
    code: 'ERR_NOT_FOUND',
    status: 3,
    line: /has no rootfs .*\(it has: memfile\)/,
  },
  {
    what: 'regression: a missing GCS bucket was reported as a missing part object (push)',
    args: () => ['push', '--storage', 'gs://no-such-bucket-here', '--gcs-endpoint', gcs.endpoint, '--build-id', randomUUID(), '--memfile', input],
    code: 'ERR_BUCKET_NOT_FOUND',
    status: 3,
    line: /bucket gs:\/\/no-such-bucket-here does not exist/,
  },
  {
    what: 'a missing GCS bucket (read)',
    args: () => ['read', '--storage', 'gs://no-such-bucket-here', '--gcs-endpoint', gcs.endpoint, unknownId, 'memfile'],
    code: 'ERR_BUCKET_NOT_FOUND',
    status: 3,
  },
  {
    what: 'regression: raw ENOENT without a code (pack of a missing input)',
    args: () => ['pack', join(dir, 'missing.raw'), '--out', join(dir, 'out-missing')],
    code: 'ERR_FILE_NOT_FOUND',
    status: 3,
    line: /missing\.raw/,
  },
  { what: 'pack of a directory', args: () => ['pack', dir, '--out', join(dir, 'out-dir')], code: 'ERR_NOT_REGULAR_FILE', status: 6 },
  {
    what: 'regression: raw EEXIST without a code (keygen onto an existing file)',
    args: () => ['keygen', input],
    code: 'ERR_FILE_EXISTS',
    status: 6,
    line: /memfile: expected no file there, found one/,
  },
  {
    what: 'regression: raw EISDIR without a code (unpack --out a directory)',
    args: async () => {
      const packed = join(dir, 'packed')
      if (!existsSync(packed)) assert.equal((await runCli(['pack', input, '--out', packed])).code, 0)
      return ['unpack', packed, '--out', dir]
    },
    code: 'ERR_IS_DIRECTORY',
    status: 6,
  },
  {
    what: 'a header file that is not a header',
    args: async () => {
      const f = join(dir, 'junk.header')
      await writeFile(f, Buffer.alloc(300, 0x5a))
      return ['inspect', f]
    },
    code: 'ERR_FORMAT',
    status: 4,
  },
  {
    what: 'inspect --verify of a corrupted stored frame',
    args: async () => {
      const id = randomUUID()
      const corrupt = join(dir, 'corrupt-store')
      assert.equal((await runCli(['push', '--storage', `file://${corrupt}`, '--build-id', id, '--memfile', input])).code, 0)
      const fh = await open(join(corrupt, id, 'memfile.zstd'), 'r+')
      await fh.write(Buffer.from('garbage!'), 0, 8, 100)
      await fh.close()
      return ['inspect', '--storage', `file://${corrupt}`, id, '--verify']
    },
    code: 'ERR_VERIFY_FAILED',
    status: 4,
    line: /memfile\.zstd: frame at uncompressed offset 0/,
  },
  {
    what: 'a bad config file',
    args: async () => {
      const f = join(dir, 'bad.json')
      await writeFile(f, '{"peers": {"hedgeAfterMs": -1}}')
      return ['inspect', '--storage', `file://${store}`, built, '--config', f]
    },
    code: 'ERR_CONFIG',
    status: 2,
  },
  {
    what: 'regression: pause --api http://127.0.0.1:1 said "fetch failed"',
    args: ['pause', '--api', 'http://127.0.0.1:1', '--build-id', randomUUID(), '--memfile', '/dev/null'],
    code: 'ERR_UNREACHABLE',
    status: 5,
    line: /http:\/\/127\.0\.0\.1:1\b/,
  },
  {
    what: 'pause to a port nothing listens on',
    args: async () => ['pause', '--api', `http://127.0.0.1:${await closedPort()}`, '--build-id', randomUUID(), '--memfile', input],
    code: 'ERR_UNREACHABLE',
    status: 5,
    line: /cannot reach the node's API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/,
  },
  ...(
    [
      [401, 'ERR_UNAUTHORIZED', 'no valid bearer token'],
      [409, 'ERR_BUILD_EXISTS', 'build exists'],
      [500, 'ERR_REMOTE', 'disk on fire'],
    ] as const
  ).map(([status, code, message]): Failure => ({
    what: `regression: a ${status} refusal from pause printed as ERR_USAGE exit 2`,
    args: () => {
      const id = randomUUID()
      refusals.set(id, { status, body: { error: status === 500 ? 'ERR_INTERNAL' : code, message } })
      return ['pause', '--api', apiUrl, '--build-id', id, '--memfile', input]
    },
    code,
    status: 5,
    line: new RegExp(`HTTP ${status}.*${message}`),
  })),
  {
    what: 'pause --wait of an upload that failed',
    args: () => {
      const id = randomUUID()
      refusals.set(id, { status: 202, body: { id, state: 'framing' } })
      return ['pause', '--api', apiUrl, '--build-id', id, '--memfile', input, '--wait']
    },
    code: 'ERR_UPLOAD_FAILED',
    status: 5,
    line: /upload of build .* failed: storage refused the part/,
  },
]

test('each documented failure, through the real CLI: one coded line on stderr, the status from the table', async () => {
  for (const f of FAILURES) {
    const args = typeof f.args === 'function' ? await f.args() : f.args
    const r = await runCli(args, { env: { SNAPSWARM_API_TOKEN: '' } })
    const line = assertOneLine(r, f.code, f.status, f.what)
    if (f.line) assert.match(line, f.line, f.what)
    await f.check?.()
  }
})

test('node: a --listen that is no multiaddr, or an address not on this host, is one coded line', async () => {
  const dataDir = join(dir, 'node-bad-listen')
  const args = ['node', '--storage', `file://${store}`, '--data-dir', dataDir, '--log-level', 'silent']
  const garbage = await runCli([...args, '--listen', 'garbage'], { timeoutMs: 30_000 })
  assertOneLine(garbage, 'ERR_CONFIG', 2, '--listen garbage')
  const bootstrap = await runCli([...args, '--bootstrap', 'tcp://127.0.0.1:4001'], { timeoutMs: 30_000 })
  assert.match(assertOneLine(bootstrap, 'ERR_CONFIG', 2, '--bootstrap tcp://'), /node\.bootstrap \(--bootstrap\): expected a multiaddr/)
  // 192.0.2.1 (TEST-NET-1) is no address of this host.
  const foreign = await runCli([...args, '--listen', '/ip4/192.0.2.1/tcp/0'], { timeoutMs: 30_000 })
  assert.match(assertOneLine(foreign, 'ERR_ADDR_NOT_AVAILABLE', 6, 'a foreign --listen'), /192\.0\.2\.1/)
})

test('regression: a busy --listen port printed a libp2p stack trace; a busy --api port too: now ERR_ADDR_IN_USE naming the address', async () => {
  const busy = await busyPort()
  try {
    for (const flags of [['--listen', `/ip4/127.0.0.1/tcp/${busy.port}`], ['--api', `127.0.0.1:${busy.port}`]]) {
      const dataDir = join(dir, `node-${flags[0].slice(2)}`)
      await mkdir(dataDir, { recursive: true })
      const r = await runCli(['node', '--storage', `file://${store}`, '--data-dir', dataDir, '--log-level', 'silent', ...flags], { timeoutMs: 30_000 })
      const line = assertOneLine(r, 'ERR_ADDR_IN_USE', 6, flags.join(' '))
      assert.ok(line.includes(`127.0.0.1:${busy.port}`), line)
    }
  } finally {
    await busy.release()
  }
})

test('progress: inspect --verify and push draw it on stderr with --progress (stderr not a terminal), nothing without it', async () => {
  const quiet = await runCli(['inspect', '--storage', `file://${store}`, built, '--verify'])
  assert.equal(quiet.code, 0, quiet.stderr)
  assert.equal(quiet.stderr, '', 'no progress when stderr is not a terminal')
  const verify = await runCli(['inspect', '--storage', `file://${store}`, built, '--verify', '--progress'])
  assert.equal(verify.code, 0, verify.stderr)
  assert.match(verify.stderr, /^verify memfile \[#+\] 100% /m)
  const push = await runCli(['push', '--storage', `file://${store}`, '--build-id', randomUUID(), '--memfile', input, '--progress'])
  assert.equal(push.code, 0, push.stderr)
  assert.match(push.stderr, /^push memfile \[#+\] 100% /m)
  const id = randomUUID()
  refusals.set(id, { status: 202, body: { id, state: 'framing', final: 'uploaded' } })
  const paused = await runCli(['pause', '--api', apiUrl, '--build-id', id, '--memfile', input, '--wait', '--progress'], { env: { SNAPSWARM_API_TOKEN: '' } })
  assert.equal(paused.code, 0, paused.stderr)
  assert.match(paused.stderr, new RegExp(`^pause ${id}: uploaded after \\d+\\.\\d s$`, 'm'))
  assert.equal(JSON.parse(paused.stdout.toString().trim().split('\n').at(-1)!).state, 'uploaded')
})
