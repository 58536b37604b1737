/**
 * The HTTP API's bearer token (src/api/auth.ts): a real daemon in process (file:// storage, real
 * HTTP on 127.0.0.1) with a token: the probes stay open, every other route answers 401 without the
 * right token and before doing anything, and with it a pause and a lazy read work byte-exactly, through
 * the HTTP API and through `snapswarm pause`. Plus the pure pieces: the loopback rule, token checks.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError } from '../../src/config/load.ts'
import { BearerCheck, checkApiToken, isLoopbackHost, resolveApiToken } from '../../src/api/auth.ts'
import type { SnapswarmNode } from '../../src/node/daemon.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { runCli } from '../../bench/lib/cli.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
let env: TestNodes
let dir: string
let tokenFile: string
let token: string
let node: SnapswarmNode

before(async () => {
  env = await testNodes({ prefix: 'auth' })
  dir = env.dir
  token = randomBytes(32).toString('base64url')
  tokenFile = join(dir, 'api.token')
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 })
  node = await env.startTestNode('node', { config: { node: { apiTokenFile: tokenFile } } })
})

after(async () => {
  await env?.close()
})

const bearer = (t: string) => ({ authorization: `Bearer ${t}` })
/** The right token with its last character changed: same length, same alphabet. */
const wrongToken = () => token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')

async function memfile(size: number, seed: number): Promise<{ path: string; data: Buffer }> {
  const data = new VmDataGenerator(seed).next(size)
  const path = join(dir, `memfile-${seed}`)
  await writeFile(path, data)
  return { path, data }
}

async function waitUploaded(id: string): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const res = await fetch(`${node.apiUrl}/v1/builds/${id}`, { headers: bearer(token) })
    if (res.status === 200 && ((await res.json()) as { state: string }).state === 'uploaded') return
    if (Date.now() > deadline) throw new Error(`build ${id} was not uploaded in 60 s`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function readRange(id: string, start: number, end: number): Promise<Buffer> {
  const res = await fetch(`${node.apiUrl}/v1/builds/${id}/memfile`, { headers: { ...bearer(token), range: `bytes=${start}-${end}` } })
  const bytes = Buffer.from(await res.arrayBuffer())
  assert.equal(res.status, 206, bytes.toString())
  return bytes
}

test('the probes answer without a token', async () => {
  for (const path of ['/healthz', '/readyz']) {
    const res = await fetch(`${node.apiUrl}${path}`)
    assert.equal(res.status, 200, path)
    await res.arrayBuffer()
  }
})

test('every other route answers 401 without the right token, with WWW-Authenticate and a JSON error', async () => {
  const id = randomUUID()
  const { path } = await memfile(64 * 1024, 1)
  const routes: [string, string, string?][] = [
    ['GET', '/metrics'],
    ['GET', '/v1/peers'],
    ['GET', `/v1/builds/${id}`],
    ['GET', `/v1/builds/${id}/memfile`],
    ['POST', `/v1/builds/${id}`, JSON.stringify({ files: { memfile: path } })],
    ['GET', '/no/such/route'],
  ]
  const cases: [string, Record<string, string>, string][] = [
    ['no header', {}, 'Bearer'],
    ['another scheme', { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` }, 'Bearer'],
    ['an empty bearer', { authorization: 'Bearer ' }, 'Bearer'],
    ['a wrong token', bearer(wrongToken()), 'Bearer error="invalid_token"'],
    ['a prefix of the token', bearer(token.slice(0, 32)), 'Bearer error="invalid_token"'],
    ['the token plus more', bearer(`${token}x`), 'Bearer error="invalid_token"'],
  ]
  for (const [method, route, body] of routes) {
    for (const [what, headers, challenge] of cases) {
      const res = await fetch(`${node.apiUrl}${route}`, { method, headers: { ...headers, range: 'bytes=0-99', 'content-type': 'application/json' }, body })
      const label = `${method} ${route} with ${what}`
      assert.equal(res.status, 401, label)
      assert.equal(res.headers.get('www-authenticate'), challenge, label)
      assert.equal(res.headers.get('content-type'), 'application/json', label)
      const answer = (await res.json()) as { error: string; message: string }
      assert.equal(answer.error, 'ERR_UNAUTHORIZED', label)
      assert.match(answer.message, /bearer|Bearer/, label)
      assert.ok(!answer.message.includes(token), 'the token is never echoed')
    }
  }
  // The refused pause did nothing: no local build, and with the token the node does not know the id.
  assert.equal(node.localBuild(id), undefined)
  const known = await fetch(`${node.apiUrl}/v1/builds/${id}`, { headers: bearer(token) })
  assert.equal(known.status, 404, await known.text())
})

test('with the right token: metrics, peers, a pause, then a Range read byte-equal to the source', async () => {
  const metrics = await fetch(`${node.apiUrl}/metrics`, { headers: bearer(token) })
  assert.equal(metrics.status, 200)
  assert.match(await metrics.text(), /snapswarm_/)
  const peers = await fetch(`${node.apiUrl}/v1/peers`, { headers: { authorization: `bearer  ${token}` } })
  assert.equal(peers.status, 200, 'the scheme is case-insensitive (RFC 7235 §2.1)')
  assert.equal(((await peers.json()) as { self: string }).self, node.peerId)

  const { path, data } = await memfile(3 * MiB, 2)
  const id = randomUUID()
  const res = await fetch(`${node.apiUrl}/v1/builds/${id}`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify({ files: { memfile: path } }) })
  assert.equal(res.status, 202, await res.text())
  await waitUploaded(id)
  assert.ok((await readRange(id, 0, data.byteLength - 1)).equals(data))
  assert.ok((await readRange(id, MiB + 5, 2 * MiB + 17)).equals(data.subarray(MiB + 5, 2 * MiB + 18)))
})

test('snapswarm pause sends the token from --api-token-file or SNAPSWARM_API_TOKEN, and is refused without it', async () => {
  const { path, data } = await memfile(2 * MiB, 3)
  const noEnv = { SNAPSWARM_API_TOKEN: '' }
  const refused = await runCli(['pause', '--api', node.apiUrl, '--build-id', randomUUID(), '--memfile', path], { env: noEnv })
  assert.equal(refused.code, 5, refused.stderr)
  assert.match(refused.stderr, /^snapswarm: ERR_UNAUTHORIZED: pause refused \(HTTP 401\): .*--api-token-file FILE or SNAPSWARM_API_TOKEN\n$/)

  const id = randomUUID()
  const viaFile = await runCli(['pause', '--api', node.apiUrl, '--api-token-file', tokenFile, '--build-id', id, '--memfile', path, '--wait'], { env: noEnv })
  assert.equal(viaFile.code, 0, viaFile.stderr)
  assert.equal(JSON.parse(viaFile.stdout.toString().trim().split('\n').at(-1)!).state, 'uploaded')
  assert.ok((await readRange(id, 0, data.byteLength - 1)).equals(data))

  const id2 = randomUUID()
  const viaEnv = await runCli(['pause', '--api', node.apiUrl, '--build-id', id2, '--memfile', path], { env: { SNAPSWARM_API_TOKEN: token } })
  assert.equal(viaEnv.code, 0, viaEnv.stderr)
  await waitUploaded(id2)
  assert.ok((await readRange(id2, 4096, 8191)).equals(data.subarray(4096, 8192)))

  const wrong = join(dir, 'wrong.token')
  await writeFile(wrong, wrongToken())
  const r = await runCli(['pause', '--api', node.apiUrl, '--api-token-file', wrong, '--build-id', randomUUID(), '--memfile', path], { env: { SNAPSWARM_API_TOKEN: token } })
  assert.equal(r.code, 5, 'the flag wins over the environment')
  assert.match(r.stderr, /ERR_UNAUTHORIZED: pause refused \(HTTP 401\)/)
})

test('the node refuses to serve its token file (or cluster key) through a pause', async () => {
  const res = await fetch(`${node.apiUrl}/v1/builds/${randomUUID()}`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify({ files: { memfile: tokenFile } }) })
  assert.equal(res.status, 400)
  assert.match(((await res.json()) as { message: string }).message, /API token/)
  // Nor through a symlink to it: paths are compared as real paths.
  const link = join(dir, 'innocent-looking-memfile')
  await symlink(tokenFile, link)
  const viaLink = await fetch(`${node.apiUrl}/v1/builds/${randomUUID()}`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify({ files: { memfile: link } }) })
  assert.equal(viaLink.status, 400)
})

test('a non-loopback node.api without a token refuses to start before opening anything', async () => {
  // 192.0.2.1 (TEST-NET-1) is no local address: even a broken check could not bind it.
  const dataDir = join(dir, 'exposed')
  await assert.rejects(env.startTestNode('exposed', { config: { node: { api: '192.0.2.1:0' } } }), (err: Error) => {
    assert.ok(err instanceof ConfigError)
    assert.match(err.message, /^node\.api 192\.0\.2\.1:0 is not a loopback address .* node\.apiTokenFile is not set/)
    return true
  })
  assert.ok(!existsSync(dataDir), 'nothing was created')
})

test('resolveApiToken: the loopback rule, decided from the host string alone', async () => {
  for (const api of ['127.0.0.1:0', '127.3.2.1:8080', 'localhost:8080', 'LocalHost:1', '[::1]:8080', '[0:0:0:0:0:0:0:1]:9', '[::ffff:127.0.0.1]:9']) {
    assert.equal(await resolveApiToken({ api }), undefined, api)
  }
  for (const api of ['0.0.0.0:8080', '[::]:8080', '10.0.0.5:8080', '192.0.2.1:0', 'node1:8080', '127.1:8080', '[::ffff:10.0.0.1]:9', 'localhost.example.com:80']) {
    await assert.rejects(resolveApiToken({ api }), /is not a loopback address.*node\.apiTokenFile is not set/, api)
  }
  assert.equal(await resolveApiToken({ api: '0.0.0.0:8080', apiTokenFile: tokenFile }), token, 'with a token any address is allowed')
  assert.equal(isLoopbackHost('127.255.255.255'), true)
  assert.equal(isLoopbackHost('128.0.0.1'), false)
})

test('tokens: at least 32 characters of [A-Za-z0-9._~+/=-], trimmed; a bad one is named, never shown', async () => {
  assert.equal(checkApiToken(`  ${'a'.repeat(32)}\r\n`, 'x'), 'a'.repeat(32))
  assert.equal(checkApiToken('AZaz09._~+/=-'.repeat(3), 'x').length, 39)
  assert.throws(() => checkApiToken('s3cret-but-short', 'where'), /^.*where: expected a bearer token of 32 to 4096 characters .*found 16 characters$/)
  assert.throws(() => checkApiToken(`${'a'.repeat(31)} b`, 'where'), (err: Error) => err instanceof ConfigError && /found a character outside that set/.test(err.message) && !err.message.includes('aaaa'))
  assert.throws(() => checkApiToken('a'.repeat(4097), 'where'), /found 4097 characters/)
  const short = join(dir, 'short.token')
  await writeFile(short, 'tooShortToken')
  await assert.rejects(resolveApiToken({ api: '127.0.0.1:0', apiTokenFile: short }), (err: Error) => {
    assert.ok(err instanceof ConfigError)
    assert.equal(err.message, `node.apiTokenFile ${short}: expected a bearer token of 32 to 4096 characters from [A-Za-z0-9._~+/=-], found 13 characters`)
    return true
  })
  await assert.rejects(resolveApiToken({ api: '127.0.0.1:0', apiTokenFile: join(dir, 'missing.token') }), /node\.apiTokenFile .*missing\.token: cannot read the token file: ENOENT/)
})

test('BearerCheck: only the exact token passes', () => {
  const check = new BearerCheck(token)
  assert.equal(check.check(`Bearer ${token}`), 'ok')
  assert.equal(check.check(undefined), 'missing')
  assert.equal(check.check(token), 'missing')
  assert.equal(check.check(`Bearer ${token} extra`), 'missing')
  assert.equal(check.check(`Bearer ${wrongToken()}`), 'invalid')
  assert.equal(check.check(`Bearer ${token.toUpperCase()}`), token === token.toUpperCase() ? 'ok' : 'invalid')
})
