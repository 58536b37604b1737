/**
 * `snapswarm demo` through the real CLI: a size it cannot run is refused before any work (no temp
 * dir, no node started), and a small demo runs every check and reports the build states it measured.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { DEMO_MAX_SIZE_MIB, demoSizeMiB } from '../../src/cli/demo.ts'
import { runCli } from '../../bench/lib/cli.ts'

// The demo's temp dir goes under TMPDIR: a private one shows exactly what a run leaves or creates.
let tmp: string
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'snapswarm-demo-test-'))
})
after(async () => {
  await rm(tmp, { recursive: true, force: true })
})

test('regression: demo --size-mib 0 ran 32 s and failed; now 0, negative, fractional, garbage and oversized sizes are ERR_USAGE (exit 2) before any work', async () => {
  for (const size of ['0', '-1', '1.5', 'abc', '', '0x10', String(DEMO_MAX_SIZE_MIB + 1), '9'.repeat(30)]) {
    const r = await runCli(['demo', `--size-mib=${size}`], { env: { TMPDIR: tmp } })
    assert.equal(r.code, 2, `--size-mib=${size}: ${r.stderr}`)
    assert.match(r.stderr, /^snapswarm: ERR_USAGE: .*--size-mib/m, `--size-mib=${size}`)
    assert.equal(r.stderr.trim().split('\n').length, 1, `one error line for --size-mib=${size}: ${r.stderr}`)
    assert.doesNotMatch(r.stdout.toString(), /3 nodes/, `--size-mib=${size}: no node was started`)
    assert.deepEqual(await readdir(tmp), [], `--size-mib=${size}: no temp dir was created`)
  }
})

test('demo sizes: 1 to the maximum are accepted, the default is 256 MiB', () => {
  assert.equal(demoSizeMiB(undefined), 256)
  assert.equal(demoSizeMiB('1'), 1)
  assert.equal(demoSizeMiB(String(DEMO_MAX_SIZE_MIB)), DEMO_MAX_SIZE_MIB)
  for (const bad of ['0', '-3', ' 4', '4 ', '1e3', true]) assert.throws(() => demoSizeMiB(bad), { code: 'ERR_USAGE' })
})

test('regression: the demo check "resume ran while the upload was pending" printed a fixed "pending"; it now prints the states it measured, and a small demo passes every check', { timeout: 240_000 }, async () => {
  const r = await runCli(['demo', '--size-mib', '32'], { env: { TMPDIR: tmp }, timeoutMs: 220_000 })
  const out = r.stdout.toString()
  assert.equal(r.code, 0, `${out}\n${r.stderr}`)
  const states = /✔ resume ran while the upload was pending: build state when the read started: (\w+), at its first byte: (\w+); after the read: (\w+)/.exec(out)
  assert.ok(states, out)
  assert.equal(states[1], 'pending')
  for (const s of states.slice(2)) assert.match(s, /^(pending|uploaded)$/, out)
  assert.match(out, /✔ node 2 switched over to the final header from storage: [1-9]\d* switchover\(s\)/)
  const checks = /all (\d+) checks passed/.exec(out)
  assert.ok(checks && Number(checks[1]) >= 6, out)
  assert.deepEqual(await readdir(tmp), [], 'the demo removed its temp dir')
})
