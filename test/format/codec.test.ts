import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import zlib from 'node:zlib'
import { compressFrameSync } from 'lz4-napi'
import { getCodec } from '../../src/format/codec.ts'
import { CorruptFrameError, InvalidArgumentError } from '../../src/errors.ts'
import type { CodecName } from '../../src/format/types.ts'
import { rng, vmLike } from './helpers.ts'

const REAL: CodecName[] = ['zstd', 'lz4']
const MiB = 1024 * 1024

async function rejects(p: Promise<unknown>, what: string, re?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CorruptFrameError, `${what}: expected CorruptFrameError, found ${err}`)
    if (re) assert.match(err.message, re, what)
    return true
  })
}

function cli(cmd: string, input: Uint8Array): Buffer {
  const r = spawnSync(cmd, ['-d', '-c'], { input, maxBuffer: 64 * MiB })
  assert.equal(r.status, 0, `${cmd} -d failed: ${r.stderr}`)
  return r.stdout
}

describe('codecs', () => {
  for (const name of REAL) {
    it(`${name}: round-trips frames of many sizes, incompressible data included`, async () => {
      const codec = getCodec(name)
      for (const n of [1, 100, 4096, 65_537, 2 * MiB]) {
        for (const data of [vmLike(n, n), randomBytes(n)]) {
          const c = await codec.compress(data)
          assert.deepEqual(Buffer.from(await codec.decompress(c, n)), data)
        }
      }
    })

    it(`${name}: the stock CLI decodes our frames, concatenated`, async () => {
      const codec = getCodec(name)
      const parts = [vmLike(2 * MiB, 1), vmLike(MiB + 123, 2), vmLike(4096, 3)]
      const frames = await Promise.all(parts.map((p) => codec.compress(p, name === 'zstd' ? 3 : undefined)))
      assert.deepEqual(cli(name, Buffer.concat(frames)), Buffer.concat(parts))
    })

    it(`${name}: a single-bit flip anywhere never yields wrong bytes (checksums reached)`, async () => {
      // zstd entropy headers have redundant bits: a few flips decode to the very same bytes, which the
      // checksum then confirms. Every other flip must be a CorruptFrameError.
      const codec = getCodec(name)
      const data = vmLike(40_000, 9)
      const frame = await codec.compress(data)
      const r = rng(3)
      let detected = 0
      const jobs: Promise<void>[] = []
      for (let pos = 0; pos < frame.byteLength; pos++) {
        const bad = Uint8Array.from(frame)
        bad[pos] ^= 1 << Math.floor(r() * 8)
        const check = async () => {
          try {
            const out = await codec.decompress(bad, data.length)
            assert.ok(Buffer.from(out).equals(data), `flip at ${pos} decoded to wrong bytes`)
          } catch (err) {
            assert.ok(err instanceof CorruptFrameError, `flip at ${pos}: ${err}`)
            detected++
          }
        }
        jobs.push(check())
      }
      await Promise.all(jobs)
      assert.ok(detected >= frame.byteLength * 0.99, `${detected} of ${frame.byteLength} flips detected`)
    })

    it(`${name}: truncation, trailing bytes, a second frame and wrong sizeU are errors`, async () => {
      const codec = getCodec(name)
      const data = vmLike(300_000, 4)
      const frame = await codec.compress(data)
      for (const cut of [0, 1, 4, 7, 20, frame.byteLength >> 1, frame.byteLength - 4, frame.byteLength - 1]) {
        await rejects(codec.decompress(frame.subarray(0, cut), data.length), `truncated to ${cut}`)
      }
      await rejects(codec.decompress(Buffer.concat([frame, Buffer.of(0)]), data.length), 'trailing', /trailing/)
      await rejects(codec.decompress(Buffer.concat([frame, frame]), data.length), 'two frames', /trailing/)
      await rejects(codec.decompress(frame, data.length - 1), 'sizeU too small')
      await rejects(codec.decompress(frame, data.length + 1), 'sizeU too large')
      await rejects(codec.decompress(frame, 4096), 'sizeU far too small')
      await rejects(codec.decompress(Buffer.from('not a frame at all'), 18), 'garbage', /magic/)
    })
  }

  it('zstd: levels 1-19 work, others are refused', async () => {
    const zstd = getCodec('zstd')
    const data = vmLike(256 * 1024, 5)
    for (const level of [1, 3, 19]) assert.deepEqual(Buffer.from(await zstd.decompress(await zstd.compress(data, level), data.length)), data)
    for (const level of [0, 20, 2.5, -1]) await assert.rejects(zstd.compress(data, level), InvalidArgumentError)
  })

  it('zstd: frames record the content size and a checksum; frames without them are refused', async () => {
    const data = vmLike(100_000, 6)
    const ours = await getCodec('zstd').compress(data)
    const fhd = ours[4]
    assert.ok(fhd & 0x04, 'checksum flag')
    assert.ok(fhd >> 6 !== 0 || fhd & 0x20, 'content size recorded')
    const Z = zlib.constants
    const noChecksum = zlib.zstdCompressSync(data, { params: { [Z.ZSTD_c_checksumFlag]: 0 }, pledgedSrcSize: data.length })
    await rejects(getCodec('zstd').decompress(noChecksum, data.length), 'no checksum', /checksum/)
    const noSize = zlib.zstdCompressSync(data, { params: { [Z.ZSTD_c_contentSizeFlag]: 0, [Z.ZSTD_c_checksumFlag]: 1 } })
    await rejects(getCodec('zstd').decompress(noSize, data.length), 'no content size', /content size/)
  })

  it('zstd: a frame claiming more than sizeU is refused before decoding (no unbounded allocation)', async () => {
    // 64 MiB of zeros compress to a few KiB: a decompression bomb if the claimed size were trusted.
    const bomb = await getCodec('zstd').compress(Buffer.alloc(64 * MiB))
    assert.ok(bomb.byteLength < 64 * 1024)
    await rejects(getCodec('zstd').decompress(bomb, 4096), 'bomb', /expected content size 4096, found 67108864/)
  })

  it('lz4: a frame with blocks for more than sizeU is refused before decoding', async () => {
    const bomb = compressFrameSync(Buffer.alloc(64 * MiB), { blockChecksums: true, contentChecksum: true })
    await rejects(getCodec('lz4').decompress(bomb, 4096), 'bomb', /blocks for up to/)
  })

  it('lz4: frames are the frame format with block and content checksums, not raw blocks', async () => {
    const noise = randomBytes(70_000)
    const f = await getCodec('lz4').compress(noise)
    assert.equal(Buffer.from(f).readUInt32LE(0), 0x184d2204)
    assert.equal(f[4] & 0x14, 0x14, 'block and content checksum flags')
    assert.ok(f.byteLength > noise.length, 'incompressible data is stored, not lost')
  })

  it('frames written by the stock CLIs decode (interop)', async () => {
    // From a file, so the CLIs know the size and record it, as our frames do.
    const dir = mkdtempSync(join(tmpdir(), 'snapswarm-codec-'))
    try {
      const data = vmLike(3 * MiB, 11)
      const input = join(dir, 'data')
      writeFileSync(input, data)
      for (const [cmd, args] of [
        ['zstd', ['-3', '-c', '--content-size', '--check', input]],
        ['lz4', ['-c', '-BX', '--content-size', input]],
      ] as const) {
        const r = spawnSync(cmd, [...args], { maxBuffer: 64 * MiB })
        assert.equal(r.status, 0, String(r.stderr))
        assert.deepEqual(Buffer.from(await getCodec(cmd).decompress(r.stdout, data.length)), data, cmd)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('none: bytes pass through; only the size is checked', async () => {
    const none = getCodec('none')
    const data = vmLike(5000, 1)
    assert.equal(await none.compress(data), data)
    assert.equal(await none.decompress(data, 5000), data)
    await rejects(none.decompress(data, 4999), 'short')
    assert.throws(() => getCodec('gzip' as CodecName), InvalidArgumentError)
    await assert.rejects(none.decompress(data, -1), InvalidArgumentError)
  })

  it('two concurrent calls overlap on the thread pool (async, not main-thread)', async () => {
    const zstd = getCodec('zstd')
    const data = vmLike(MiB, 12)
    let ticks = 0
    const timer = setInterval(() => ticks++, 1)
    await Promise.all([zstd.compress(data, 15), zstd.compress(data, 15)])
    clearInterval(timer)
    assert.ok(ticks > 0, 'the event loop kept running while compressing')
  })
})
