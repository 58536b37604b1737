/**
 * Every CLI command that reads a path refuses what is not a regular file (FIFO, device, directory,
 * /proc file) with one clear ERR_ line, and reads files only up to the format's limits.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { HEADER_LIMITS } from '../../src/format/header.ts'
import { MAX_BLOB_BYTES } from '../../src/p2p/constants.ts'
import { runCli } from '../../bench/lib/cli.ts'

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-special-'))
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function fifo(dir: string): string {
  const path = join(dir, 'fifo')
  execFileSync('mkfifo', [path])
  return path
}

/** The command must end by itself (the helper's timeout kills a hung one: code null), with one ERR_ line. */
function assertRefused(r: { code: number | null; stderr: string }, code: RegExp): void {
  assert.notEqual(r.code, null, `the command hung: ${r.stderr}`)
  assert.notEqual(r.code, 0, r.stderr)
  assert.match(r.stderr, code)
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
}

test('regression: snapswarm inspect /dev/zero ends at once with a clear error and bounded memory (item 6)', async () => {
  // Before: read /dev/zero without bound (6 GiB RSS before it was killed). The 20 s timeout only
  // catches a hang; a refusal needs no reading at all.
  const r = await runCli(['inspect', '/dev/zero'], { timeoutMs: 20_000 })
  assertRefused(r, /snapswarm: ERR_NOT_REGULAR_FILE: header file: expected a regular file, found a character device at \/dev\/zero/)
})

test('regression: inspect, pack and push refuse a FIFO, a directory and a /proc file instead of blocking (item 6)', async () => {
  await withDir(async (dir) => {
    const f = fifo(dir)
    const storage = pathToFileURL(join(dir, 'bucket')).href
    for (const path of [f, dir, '/proc/self/status']) {
      assertRefused(await runCli(['inspect', path], { timeoutMs: 20_000 }), /ERR_NOT_REGULAR_FILE/)
      assertRefused(await runCli(['pack', path, '--out', join(dir, 'out')], { timeoutMs: 20_000 }), /ERR_NOT_REGULAR_FILE/)
      assertRefused(await runCli(['push', '--storage', storage, '--build-id', randomUUID(), '--memfile', path], { timeoutMs: 20_000 }), /ERR_NOT_REGULAR_FILE/)
    }
    assertRefused(await runCli(['inspect', join(dir, 'missing.header')], { timeoutMs: 20_000 }), /ERR_FILE_NOT_FOUND/)
    // A FIFO as a blob of an otherwise fine push: refused before anything is uploaded.
    const mem = join(dir, 'mem')
    await writeFile(mem, Buffer.alloc(64 * 1024, 7))
    const id = randomUUID()
    assertRefused(await runCli(['push', '--storage', storage, '--build-id', id, '--memfile', mem, '--snapfile', f], { timeoutMs: 20_000 }), /ERR_NOT_REGULAR_FILE: --snapfile/)
    assert.deepEqual(await readdir(join(dir, 'bucket')).catch(() => []), [], 'nothing was uploaded')
  })
})

test('regression: files are read only up to the format limits: a header file above the header limit, a blob above the blob limit (item 6)', async () => {
  await withDir(async (dir) => {
    // Sparse: the size is what is checked, before any byte is read.
    const big = join(dir, 'big.header')
    await writeFile(big, '')
    await truncate(big, HEADER_LIMITS.maxHeaderBytes + 1)
    assertRefused(await runCli(['inspect', big], { timeoutMs: 20_000 }), new RegExp(`ERR_LIMIT: header file: expected a file of <= ${HEADER_LIMITS.maxHeaderBytes} bytes, found ${HEADER_LIMITS.maxHeaderBytes + 1}`))
    const blob = join(dir, 'snapfile')
    await writeFile(blob, '')
    await truncate(blob, MAX_BLOB_BYTES + 1)
    const mem = join(dir, 'mem')
    await writeFile(mem, Buffer.alloc(4096, 1))
    const storage = pathToFileURL(join(dir, 'bucket')).href
    assertRefused(await runCli(['push', '--storage', storage, '--build-id', randomUUID(), '--memfile', mem, '--snapfile', blob], { timeoutMs: 20_000 }), /ERR_LIMIT: --snapfile/)
  })
})

test('a config file, cluster key or API token file that is a device is refused at once, not read without end', async () => {
  await withDir(async (dir) => {
    const storage = pathToFileURL(join(dir, 'bucket')).href
    const mem = join(dir, 'mem')
    await writeFile(mem, Buffer.alloc(4096, 1))
    assertRefused(await runCli(['push', '--config', '/dev/zero', '--storage', storage, '--build-id', randomUUID(), '--memfile', mem], { timeoutMs: 20_000 }), /ERR_CONFIG: cannot read config file \/dev\/zero: .*found a character device/)
    for (const flag of ['--cluster-key', '--api-token-file']) {
      const r = await runCli(['node', flag, '/dev/zero', '--storage', storage, '--data-dir', join(dir, 'node')], { timeoutMs: 20_000 })
      assert.notEqual(r.code, null, `the node hung: ${r.stderr}`)
      assert.notEqual(r.code, 0)
      assert.match(r.stderr, /snapswarm: ERR_[A-Z_]+: .*\/dev\/zero: .*expected a regular file, found a character device/)
    }
  })
})
