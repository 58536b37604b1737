/** The read-path warm-up a node runs at start: a real read through the read core, leaving nothing behind. */
import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { silentLogger } from '../../src/obs/log.ts'
import { warmReadPath } from '../../src/read/warm-up.ts'

test('warm-up reads back the frame it made through fetcher, zstd and chunk file, then removes its files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-warmup-'))
  try {
    assert.equal(await warmReadPath(join(dir, 'warm-up'), silentLogger, 256 * 1024), true)
    assert.deepEqual(await readdir(dir), [])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('warm-up that cannot write its scratch files reports false and never throws', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-warmup-'))
  try {
    await writeFile(join(dir, 'blocker'), 'a file where its directory would go')
    assert.equal(await warmReadPath(join(dir, 'blocker', 'warm-up'), silentLogger), false)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
