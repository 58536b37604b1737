import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeVmData } from '../../src/util/vmdata.ts'
import { runCli } from '../../bench/lib/cli.ts'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

async function withInput(size: number, fn: (dir: string, input: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-cli-'))
  try {
    const input = join(dir, 'input.raw')
    await writeVmData(input, size, 3)
    await fn(dir, input)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

for (const [codec, tool, suffix] of [['zstd', 'zstd', '.zstd'], ['lz4', 'lz4', '.lz4']] as const) {
  test(`pack --codec ${codec}: stock ${tool} -d decodes the data file to the input; unpack and inspect agree`, async () => {
    // 9 MiB + 1 page: a short last frame.
    await withInput(9 * 1024 * 1024 + 4096, async (dir, input) => {
      const out = join(dir, 'build')
      const id = '0f8e0c4a-1b2c-4d5e-8f90-a1b2c3d4e5f6'
      const r = await runCli(['pack', input, '--out', out, '--codec', codec, '--build-id', id, '--kind', 'memfile', '--block-size', '4096'])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout.toString(), /ratio/)
      const src = await readFile(input)
      const viaTool = execFileSync(tool, ['-d', '-c', join(out, `memfile${suffix}`)], { maxBuffer: 64 * 1024 * 1024 })
      assert.equal(sha(viaTool), sha(src))

      const restored = join(dir, 'restored.raw')
      const u = await runCli(['unpack', out, '--kind', 'memfile', '--out', restored])
      assert.equal(u.code, 0, u.stderr)
      assert.equal(sha(await readFile(restored)), sha(src))

      const i = await runCli(['inspect', join(out, 'memfile.header'), '--json'])
      assert.equal(i.code, 0, i.stderr)
      const j = JSON.parse(i.stdout.toString())
      assert.equal(j.version, 4)
      assert.equal(j.buildId, id)
      assert.equal(j.size, src.byteLength)
      assert.equal(j.flags, 0)
      assert.equal(j.builds.length, 1)
      assert.equal(j.builds[0].sha256, sha(src))
      assert.equal(j.builds[0].codec, codec)
      assert.equal(j.builds[0].frames, 5)
      assert.deepEqual(j.mappings, [{ offset: 0, length: src.byteLength, buildId: id, buildStorageOffset: 0 }])
    })
  })
}

test('pack --codec none writes a V4 raw header (SHA-256 and chunk digests) and the raw file; rootfs uses rootfs.ext4', async () => {
  await withInput(3 * 1024 * 1024, async (dir, input) => {
    const out = join(dir, 'build')
    const r = await runCli(['pack', input, '--out', out, '--codec', 'none', '--kind', 'rootfs'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(sha(await readFile(join(out, 'rootfs.ext4'))), sha(await readFile(input)))
    const i = await runCli(['inspect', join(out, 'rootfs.ext4.header'), '--json'])
    const j = JSON.parse(i.stdout.toString())
    assert.equal(j.version, 4)
    assert.equal(j.blockSize, 4096)
    assert.equal(j.builds[0].codec, 'none')
    assert.equal(j.builds[0].frames, 0)
    assert.equal(j.builds[0].sha256, sha(await readFile(input)))
    assert.deepEqual(j.builds[0].chunkDigests, { chunkSize: 2 * 1024 * 1024, chunks: 2 })
    const restored = join(dir, 'r.raw')
    assert.equal((await runCli(['unpack', out, '--kind', 'rootfs', '--out', restored])).code, 0)
    assert.equal(sha(await readFile(restored)), sha(await readFile(input)))
  })
})

test('bad input: one clear line on stderr, non-zero exit, no stack trace', async () => {
  await withInput(4 * 1024 * 1024, async (dir, input) => {
    const out = join(dir, 'build')
    assert.equal((await runCli(['pack', input, '--out', out])).code, 0)
    const header = join(out, 'memfile.header')
    await truncate(header, 70)
    const cases: string[][] = [
      ['inspect', header],
      ['pack', input, '--out', out, '--codec', 'brotli'],
      ['pack', input, '--out', out, '--frame-size', '3000', '--block-size', '4096'],
      ['pack', input, '--out', out, '--level', '40'],
      ['pack', input, '--out', out, '--build-id', 'not-a-uuid'],
      ['frobnicate'],
    ]
    await writeFile(join(dir, 'garbage.header'), Buffer.alloc(200, 0xff))
    cases.push(['inspect', join(dir, 'garbage.header')])
    for (const args of cases) {
      const r = await runCli(args)
      assert.notEqual(r.code, 0, `${args.join(' ')} should fail`)
      const lines = r.stderr.trim().split('\n')
      assert.equal(lines.length, 1, `${args.join(' ')}: ${r.stderr}`)
      assert.match(lines[0], /^snapswarm: /)
      assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/)
    }
  })
})
