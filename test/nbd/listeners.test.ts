/**
 * Where the NBD server listens: the unix socket under the data dir (mode 0600), TCP on loopback when
 * nbd.tcp is set, a non-loopback nbd.tcp refused at start without nbd.allowRemoteTcp (there is no
 * TLS), a stale socket file replaced, and nbd.* keys checked by the schema.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError, validateConfig } from '../../src/config/load.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'
import { run, runOk } from './helpers.ts'

let env: TestNodes
let dir: string

before(async () => {
  env = await testNodes({ prefix: 'nbd-listen' })
  dir = env.dir
})

after(async () => {
  await env?.close()
})

test('a non-loopback nbd.tcp is refused at start unless nbd.allowRemoteTcp; unknown nbd keys are refused', async () => {
  await assert.rejects(env.startTestNode('remote', { config: { nbd: { tcp: '0.0.0.0:0' } } }), { code: 'ERR_CONFIG', message: /nbd.tcp 0.0.0.0:0 is not a loopback address/ })
  assert.throws(() => validateConfig({ nbd: { socketPath: '/x' } }), ConfigError)
  assert.throws(() => validateConfig({ nbd: { exports: [{ build: 'not-a-uuid', file: 'rootfs' }] } }), ConfigError)
})

test('regression: a refused start keeps the regular file it found at the socket path; a stale socket is replaced (0600); unix and loopback TCP serve the same export', async () => {
  const dataDir = join(dir, 'node')
  await mkdir(dataDir, { recursive: true })
  // A regular file where the socket goes is not ours to delete: the start is refused.
  await writeFile(join(dataDir, 'nbd.sock'), 'keep me')
  const config = { nbd: { tcp: '127.0.0.1:0' } }
  await assert.rejects(env.startTestNode('node', { config }), { code: 'ERR_CONFIG', message: /exists and is not a socket/ })
  assert.equal(await readFile(join(dataDir, 'nbd.sock'), 'utf8'), 'keep me', 'regression: the refused start deleted the file it found at the socket path')
  await rm(join(dataDir, 'nbd.sock'))
  // A socket file left by a killed process (bound, never unlinked) is replaced.
  await runOk('/usr/bin/python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(join(dataDir, 'nbd.sock'))})`])
  assert.ok((await stat(join(dataDir, 'nbd.sock'))).isSocket())
  const node = await env.startTestNode('node', { config })
  try {
    const [unix, tcp] = node.nbd.addresses
    assert.equal(unix, `unix:${join(dataDir, 'nbd.sock')}`)
    assert.match(tcp, /^tcp:127\.0\.0\.1:\d+$/)
    assert.equal((await stat(join(dataDir, 'nbd.sock'))).mode & 0o777, 0o600)
    const data = new VmDataGenerator(91).next(2 * 1024 * 1024)
    await writeFile(join(dir, 'rootfs'), data)
    const id = randomUUID()
    const res = await fetch(`${node.apiUrl}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ files: { rootfs: join(dir, 'rootfs') } }) })
    assert.equal(res.status, 202)
    const viaTcp = await runOk('nbdinfo', ['--size', `nbd://${tcp.slice(4)}/${id}/rootfs`])
    assert.equal(Number(viaTcp.trim()), data.byteLength)
    const viaUnix = await runOk('nbdinfo', ['--size', `nbd+unix:///${id}/rootfs?socket=${unix.slice(5)}`])
    assert.equal(Number(viaUnix.trim()), data.byteLength)
    // A build nobody has: NBD_REP_ERR_UNKNOWN, which libnbd reports as "No such file or directory".
    const unknown = await run('nbdinfo', [`nbd+unix:///${randomUUID()}/rootfs?socket=${unix.slice(5)}`])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /server replied with error to opt_go request: No such file or directory/)
  } finally {
    await node.stop()
  }
})
