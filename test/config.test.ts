import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { resolveCompression } from '../src/config/compression.ts'
import { loadConfig, validateConfig } from '../src/config/load.ts'
import { runCli } from '../bench/lib/cli.ts'

test('config: defaults, per-kind and per-use-case overrides, environment and flags', async () => {
  const cfg = validateConfig({ compression: { default: { level: 5 }, memfile: { codec: 'lz4', pause: { codec: 'none' } } } })
  assert.equal(resolveCompression(cfg.compression, 'memfile', 'build').codec, 'lz4')
  assert.equal(resolveCompression(cfg.compression, 'memfile', 'pause').codec, 'none')
  assert.equal(resolveCompression(cfg.compression, 'rootfs', 'pause').codec, 'zstd')
  assert.equal(resolveCompression(cfg.compression, 'rootfs', 'pause').level, 5)
  assert.equal(cfg.peers.maxConcurrentServe, 64)
  const env = await loadConfig({ env: { SNAPSWARM_CODEC: 'lz4', STORAGE_EMULATOR_HOST: '127.0.0.1:4443' }, level: '7' })
  assert.equal(env.compression?.default?.codec, 'lz4')
  assert.equal(env.compression?.default?.level, 7)
  assert.equal(env.gcsEndpoint, 'http://127.0.0.1:4443')
})

test('config: an unknown key or a bad value is rejected with a message naming the key', async () => {
  assert.throws(() => validateConfig({ node: { listn: [] } }), /unknown key node\.listn/)
  assert.throws(() => validateConfig({ compression: { memfile: { pause: { level: 40 } } } }), /compression\.memfile\.pause\.level/)
  assert.throws(() => validateConfig({ storage: 'ftp://x' }), /storage: expected file:\/\/\/path, gs:\/\/bucket\[\/prefix\] or s3:\/\/bucket/)
  assert.throws(() => validateConfig({ compression: { rootfs: { frameSize: 6000 } } }), /compression\.rootfs\.build\.frameSize: must be a multiple of the rootfs block size 4096/)
  const memfile1MiB = validateConfig({ compression: { memfile: { frameSize: 1024 * 1024 } } })
  assert.throws(() => resolveCompression(memfile1MiB.compression, 'memfile', 'pause'), /multiple of the memfile block size 2097152/)
  assert.equal(resolveCompression(memfile1MiB.compression, 'memfile', 'pause', 4096).frameSize, 1024 * 1024)
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-cfg-'))
  try {
    const path = join(dir, 'bad.json')
    await writeFile(path, JSON.stringify({ peers: { hedgeAfterMs: -1 } }))
    const r = await runCli(['node', '--data-dir', join(dir, 'd'), '--config', path])
    assert.equal(r.code, 2, 'a config error is a usage error')
    assert.match(r.stderr, /^snapswarm: ERR_CONFIG: .*bad\.json: peers\.hedgeAfterMs/)
    assert.equal(r.stderr.trim().split('\n').length, 1)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('config: node.apiTokenFile from the file or --api-token-file; node.api takes [IPv6]:PORT', async () => {
  assert.equal(validateConfig({ node: { apiTokenFile: '/run/secrets/api-token' } }).node.apiTokenFile, '/run/secrets/api-token')
  assert.equal(validateConfig({}).node.apiTokenFile, undefined)
  assert.equal(validateConfig({ node: { api: '[::1]:8080' } }).node.api, '[::1]:8080')
  assert.throws(() => validateConfig({ node: { api: '::1:8080' } }), /node\.api: expected HOST:PORT/)
  const flags = await loadConfig({ env: {}, overrides: { 'node.apiTokenFile': '/t' } })
  assert.equal(flags.node.apiTokenFile, '/t')
})

test('snapswarm node: a bad API token file, or a non-loopback --api without one, is one clear config error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-cfg-'))
  try {
    const short = join(dir, 'short.token')
    await writeFile(short, 'short-secret-token\n')
    const r = await runCli(['node', '--data-dir', join(dir, 'd'), '--api-token-file', short], { timeoutMs: 20_000 })
    assert.equal(r.code, 2, r.stderr)
    assert.equal(r.stderr, `snapswarm: ERR_CONFIG: node.apiTokenFile ${short}: expected a bearer token of 32 to 4096 characters from [A-Za-z0-9._~+/=-], found 18 characters\n`)
    assert.ok(!r.stderr.includes('short-secret-token'), 'the token is never shown')
    // 192.0.2.1 (TEST-NET-1) is no local address: even a broken check could not bind it.
    const exposed = await runCli(['node', '--data-dir', join(dir, 'e'), '--api', '192.0.2.1:0'], { timeoutMs: 20_000 })
    assert.equal(exposed.code, 2, exposed.stderr)
    assert.match(exposed.stderr, /^snapswarm: ERR_CONFIG: node\.api 192\.0\.2\.1:0 is not a loopback address \(127\.0\.0\.0\/8, ::1, localhost\) and node\.apiTokenFile is not set: .*--api-token-file FILE\)\n$/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
