/**
 * Upload checks on the real CLI: a 3-layer chain pushed to file:// storage (and to fake-gcs-server in
 * push-gcs.test.ts) has exactly the object names of docs/FORMAT.md, its data decodes with the stock CLIs, and
 * `read` returns bytes identical to a model of the virtual file for random ranges.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { runCli } from '../../bench/lib/cli.ts'
import { checkRandomReads, nonZeroPages, pushChain } from './chain.ts'

const MiB = 1024 * 1024

test('push a 3-layer chain to file:// storage: object names, stock zstd -d, lazy read equals the model', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-push-'))
  try {
    const bucket = join(dir, 'bucket')
    const storage = pathToFileURL(bucket).href
    const model = await pushChain(storage, dir)
    const [a, b, c] = model.ids
    // e2b's form: a compressed object's size in its `.uncompressed-size` sidecar; none for the raw one.
    assert.deepEqual((await readdir(join(bucket, a))).sort(), ['memfile.header', 'memfile.zstd', 'memfile.zstd.uncompressed-size', 'snapfile'])
    assert.deepEqual((await readdir(join(bucket, b))).sort(), ['memfile', 'memfile.header'])
    assert.deepEqual((await readdir(join(bucket, c))).sort(), ['memfile.header', 'memfile.lz4', 'memfile.lz4.uncompressed-size'])
    const base = execFileSync('zstd', ['-d', '-q', '-c', join(bucket, a, 'memfile.zstd')], { maxBuffer: 64 * MiB, stdio: ['ignore', 'pipe', 'pipe'] })
    // All-zero 4 KiB blocks are holes: the data object holds the other pages of the base, in order.
    assert.ok(base.equals(nonZeroPages(await readFile(join(dir, 'base.raw')))), 'stock zstd -d gives the non-zero pages of the base')
    assert.ok(base.byteLength < 12 * MiB * 0.7, `zero pages left out: ${base.byteLength} of ${12 * MiB} bytes stored`)
    execFileSync('lz4', ['-q', '-t', join(bucket, c, 'memfile.lz4')], { stdio: ['ignore', 'pipe', 'pipe'] })

    const inspect = await runCli(['inspect', '--storage', storage, c, '--json', '--verify'])
    assert.equal(inspect.code, 0, inspect.stderr)
    const j = JSON.parse(inspect.stdout.toString())
    assert.equal(j.memfile.header.generation, 3, 'the base is generation 1, as e2b stores a first layer')
    assert.equal(j.memfile.header.builds.length, 3, 'every layer is listed; the raw one as codec none with no frames')
    assert.equal(j.memfile.verify.failures.length, 0)
    await checkRandomReads(storage, model, 12)

    // A corrupted data object is named by inspect --verify.
    const obj = join(bucket, a, 'memfile.zstd')
    const bytes = await readFile(obj)
    bytes[bytes.byteLength >> 1] ^= 0xff
    await writeFile(obj, bytes)
    const bad = await runCli(['inspect', '--storage', storage, a, '--verify'])
    assert.equal(bad.code, 4)
    assert.match(bad.stderr, /ERR_VERIFY_FAILED: .*memfile\.zstd: frame at uncompressed offset \d+/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
