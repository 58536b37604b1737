/** Where the tests find the GCS emulator: $FAKE_GCS_SERVER, then $HOME/.cache/snapswarm-bin, then PATH; never a fixed home. */
import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { fakeGcsBinary, fakeGcsCandidates } from '../../bench/lib/fake-gcs.ts'

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-fake-gcs-lookup-'))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function executable(path: string, mode = 0o755): Promise<string> {
  await mkdir(join(path, '..'), { recursive: true })
  await writeFile(path, '#!/bin/sh\nexit 0\n')
  await chmod(path, mode)
  return path
}

test('the lookup order: an explicit $FAKE_GCS_SERVER alone, else $HOME/.cache/snapswarm-bin, then each PATH entry', () => {
  assert.deepEqual(fakeGcsCandidates({ FAKE_GCS_SERVER: '/opt/x/fake-gcs-server', HOME: '/home/u', PATH: '/usr/bin' }), ['/opt/x/fake-gcs-server'])
  assert.deepEqual(fakeGcsCandidates({ HOME: '/home/u', PATH: '/a:/b' }), ['/home/u/.cache/snapswarm-bin/fake-gcs-server', '/a/fake-gcs-server', '/b/fake-gcs-server'])
  assert.ok(fakeGcsCandidates({ HOME: '/home/u', PATH: '' }).every((p) => !p.startsWith('/root/')), 'no fixed home directory')
})

test("a binary in $HOME's cache wins over PATH; without it, the first executable on PATH is used", async () => {
  const home = join(dir, 'home')
  const onPath = await executable(join(dir, 'path-b', 'fake-gcs-server'))
  await executable(join(dir, 'path-a', 'fake-gcs-server'), 0o644) // not executable: skipped
  const PATH = [join(dir, 'path-a'), join(dir, 'path-b')].join(':')
  assert.equal(fakeGcsBinary({ HOME: home, PATH }), onPath)
  const cached = await executable(join(home, '.cache', 'snapswarm-bin', 'fake-gcs-server'))
  assert.equal(fakeGcsBinary({ HOME: home, PATH }), cached)
})

test('not found anywhere: the error lists where it looked and how to install it under $HOME', () => {
  const home = join(dir, 'empty-home')
  assert.throws(() => fakeGcsBinary({ HOME: home, PATH: join(dir, 'nothing') }), (err: Error) => {
    assert.match(err.message, new RegExp(`looked at ${home}/\\.cache/snapswarm-bin/fake-gcs-server, ${dir}/nothing/fake-gcs-server`))
    assert.match(err.message, new RegExp(`GOBIN=${home}/\\.cache/snapswarm-bin go install github\\.com/fsouza/fake-gcs-server@v`))
    return true
  })
  assert.throws(() => fakeGcsBinary({ FAKE_GCS_SERVER: join(dir, 'missing'), HOME: home, PATH: '' }), /looked at .*missing\)/)
})
