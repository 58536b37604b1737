/**
 * The framing pipeline (`frameFile`) and its inverse for local files (`writeFramedRange`,
 * `readFramedRange`): round trips for edge sizes, every codec, 1 and 2 workers, ranges that start and
 * end mid-frame, every byte compared with the source; and what an input error does. Real files and
 * real codecs throughout (the CLI tests cover `pack`/`unpack` end to end on one large file).
 */
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { truncateSync } from 'node:fs'
import { type FileHandle, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, before, describe, test } from 'node:test'
import { getCodec } from '../../src/format/codec.ts'
import { CorruptFrameError, InvalidArgumentError } from '../../src/errors.ts'
import type { FrameTable } from '../../src/format/frame-table.ts'
import type { CodecName } from '../../src/format/types.ts'
import { frameFile, type FramingResult } from '../../src/framing/framer.ts'
import { readFramedRange, writeFramedRange } from '../../src/framing/local-reader.ts'
import { pack } from '../../src/framing/pack.ts'
import { openStoredBuildFile } from '../../src/read/open.ts'
import { openStore } from '../../src/storage/url.ts'
import { vmLike } from '../format/helpers.ts'
import { runCli } from '../../bench/lib/cli.ts'

const F = 16 * 1024
const CODECS: readonly CodecName[] = ['zstd', 'lz4', 'none']
const SIZES = [0, 1, F, F + 1, 4 * F, 7 * F + 123]
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-framer-'))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

let fileNo = 0
/** What an output file holds before a write: a frame still equal to it was never written. */
const SENTINEL = 0xa5

/** VM-like bytes whose first, third, fourth and last frames are all zeros, ending in a zero tail shorter than a frame. */
function zeroFramed(): Buffer {
  const src = Buffer.from(vmLike(6 * F + 100, 11))
  for (const [start, end] of [[0, F], [2 * F, 4 * F], [5 * F, 6 * F + 100]]) src.fill(0, start, end)
  return src
}
async function fileWith(bytes: Uint8Array): Promise<string> {
  const path = join(dir, `f${fileNo++}`)
  await writeFile(path, bytes)
  return path
}

async function withFile<T>(path: string, flags: string, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
  const fh = await open(path, flags)
  try {
    return await fn(fh)
  } finally {
    await fh.close()
  }
}

/** `file` with its writes counted: started, finished, and started after `rejected` was set. */
function countingWrites(file: FileHandle): { out: FileHandle; writes: { started: number; finished: number; late: number; rejected: boolean } } {
  const writes = { started: 0, finished: 0, late: 0, rejected: false }
  const write = async (...args: Parameters<FileHandle['write']>) => {
    writes.started++
    if (writes.rejected) writes.late++
    try {
      return await (file.write as (...a: unknown[]) => ReturnType<FileHandle['write']>).apply(file, args)
    } finally {
      writes.finished++
    }
  }
  const out = new Proxy(file, {
    get(target, key) {
      if (key === 'write') return write
      const value = Reflect.get(target, key, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return { out, writes }
}

interface Framed extends FramingResult {
  /** What the sink received, in order. */
  readonly emitted: { stored: Uint8Array; sizeU: number }[]
  readonly progress: [number, number][]
}

async function frame(src: Uint8Array, codec: CodecName, workers: number, range?: { offset: number; length: number }): Promise<Framed> {
  const emitted: Framed['emitted'] = []
  const progress: Framed['progress'] = []
  const result = await withFile(await fileWith(src), 'r', (fh) =>
    frameFile(
      fh,
      { codec, frameSize: F, workers, onProgress: (r, c) => progress.push([r, c]) },
      async (stored, sizeU) => {
        emitted.push({ stored: Uint8Array.from(stored), sizeU })
      },
      range,
    ),
  )
  return { ...result, emitted, progress }
}

/** Ranges of [0, n) worth checking: whole, trimmed, crossing boundaries mid-frame, inside one frame, exactly one frame. */
function rangesOf(n: number): [number, number][] {
  const out: [number, number][] = [[0, n]]
  if (n > 2) out.push([1, n - 2])
  if (n > F) out.push([F / 2, Math.min(n, F / 2 + F + 100) - F / 2]) // starts and ends mid-frame, crosses a boundary
  if (n > F + 50) out.push([F + 5, 45]) // inside one frame
  if (n >= F) out.push([0, F], [1000, F - 1000]) // exactly the first frame; mid-frame to a boundary
  if (n >= 2 * F) out.push([F, F], [F - 1, F + 2]) // an aligned later frame; one byte either side of it
  return out
}

/** Decode [offset, +length) with writeFramedRange into a fresh file at a non-zero offset; check it all. */
async function checkRange(data: string, table: FrameTable | null, src: Uint8Array, offset: number, length: number, workers: number): Promise<void> {
  const outPath = join(dir, `out${fileNo++}`)
  const outOffset = 3
  await withFile(data, 'r', (fh) => withFile(outPath, 'w', (out) => writeFramedRange(fh, table, offset, length, out, outOffset, { workers })))
  const written = await readFile(outPath)
  const what = `[${offset}, +${length}) workers ${workers}`
  assert.equal(written.length, length === 0 ? 0 : outOffset + length, `${what}: nothing written past the range`)
  if (length > 0) assert.ok(Buffer.from(src.subarray(offset, offset + length)).equals(written.subarray(outOffset)), `${what}: bytes differ`)
  const read = await withFile(data, 'r', (fh) => readFramedRange(fh, table, offset, length))
  assert.ok(Buffer.from(src.subarray(offset, offset + length)).equals(Buffer.from(read)), `${what}: readFramedRange bytes differ`)
}

describe('frameFile → writeFramedRange round trips', () => {
  for (const codec of CODECS) {
    for (const workers of [1, 2]) {
      test(`${codec}, ${workers} worker(s): sizes ${SIZES.join(', ')}`, async () => {
        for (const n of SIZES) {
          const src = vmLike(n, n + 1)
          const framed = await frame(src, codec, workers)
          const frames = Math.ceil(n / F)
          assert.equal(framed.size, n)
          assert.equal(Buffer.from(framed.sha256).toString('hex'), sha(src), `${n}: SHA-256 of the uncompressed stream`)
          assert.equal(framed.table.codec, codec)
          assert.equal(framed.table.frames.length, frames, `${n}: frame count`)
          assert.equal(framed.emitted.length, frames)
          framed.table.frames.forEach((f, i) => {
            assert.equal(f.startU, i * F, `${n}: frame ${i} starts where the previous ended`)
            assert.equal(f.sizeU, Math.min(F, n - i * F), `${n}: frame ${i} size`)
            assert.equal(framed.emitted[i].sizeU, f.sizeU)
            assert.equal(framed.emitted[i].stored.byteLength, f.sizeC, `${n}: frame ${i} stored size`)
          })
          const stored = Buffer.concat(framed.emitted.map((e) => e.stored))
          assert.deepEqual(framed.progress.at(-1) ?? [0, 0], [n, stored.length], `${n}: final progress`)
          // Each frame decodes alone to exactly its slice of the source.
          for (const [i, f] of framed.table.frames.entries()) {
            const plain = await getCodec(codec).decompress(framed.emitted[i].stored, f.sizeU)
            assert.ok(Buffer.from(plain).equals(src.subarray(f.startU, f.startU + f.sizeU)), `${n}: frame ${i} decodes to its source bytes`)
          }
          if (codec === 'none') assert.ok(stored.equals(src), `${n}: raw frames are the file`)
          const data = await fileWith(stored)
          const tables: (FrameTable | null)[] = codec === 'none' ? [null, framed.table] : [framed.table]
          for (const table of tables) {
            for (const [offset, length] of rangesOf(n)) await checkRange(data, table, src, offset, length, workers)
          }
        }
      })
    }
  }

  test('a range of the input file: frames cut from its start, hash of the range only', async () => {
    const src = vmLike(5 * F, 9)
    for (const codec of ['zstd', 'lz4'] as const) {
      const framed = await frame(src, codec, 2, { offset: 5, length: 3 * F + 7 })
      const part = src.subarray(5, 5 + 3 * F + 7)
      assert.equal(framed.size, part.length)
      assert.equal(Buffer.from(framed.sha256).toString('hex'), sha(part))
      assert.deepEqual(
        framed.table.frames.map((f) => f.sizeU),
        [F, F, F, 7],
      )
      const data = await fileWith(Buffer.concat(framed.emitted.map((e) => e.stored)))
      for (const [offset, length] of rangesOf(part.length)) await checkRange(data, framed.table, part, offset, length, 2)
    }
  })

  test('all-zero frames (first, middle, last, a short zero tail) and an all-zero file: written over a sentinel as zeros, read back as zeros', async () => {
    for (const codec of CODECS) {
      for (const src of [zeroFramed(), Buffer.alloc(3 * F + 100)]) {
        const framed = await frame(src, codec, 2)
        assert.equal(framed.size, src.length)
        assert.equal(Buffer.from(framed.sha256).toString('hex'), sha(src))
        const data = await fileWith(Buffer.concat(framed.emitted.map((e) => e.stored)))
        for (const workers of [1, 2]) {
          const outPath = await fileWith(Buffer.alloc(src.length, SENTINEL))
          await withFile(data, 'r', (fh) => withFile(outPath, 'r+', (out) => writeFramedRange(fh, framed.table, 0, src.length, out, 0, { workers })))
          assert.ok((await readFile(outPath)).equals(src), `${codec}, ${workers} workers: every zero frame was written, every byte exact`)
        }
        for (const f of framed.table.frames) {
          const plain = await withFile(data, 'r', (fh) => readFramedRange(fh, framed.table, f.startU, f.sizeU))
          assert.ok(Buffer.from(plain).equals(src.subarray(f.startU, f.startU + f.sizeU)), `${codec}: frame at ${f.startU}`)
        }
      }
    }
  })

  test('pack, with and without zero blocks left out as holes: the stored build and unpack give back every byte, zero frames included', async () => {
    const src = zeroFramed()
    const input = await fileWith(src)
    for (const codec of CODECS) {
      for (const elideZeros of [false, true]) {
        const bucket = join(dir, `bucket${fileNo++}`)
        const buildId = randomUUID()
        const packed = await pack({ input, outDir: join(bucket, buildId), kind: 'memfile', buildId, codec, level: 1, frameSize: F, blockSize: 4096, workers: 2, elideZeros })
        const what = `${codec}, elideZeros ${elideZeros}`
        // Left out, the zero frames are holes (nil mappings); kept, they are stored frames like any other.
        assert.equal(packed.holes.length > 0, elideZeros, `${what}: holes ${JSON.stringify(packed.holes)}`)
        const store = await openStore(pathToFileURL(bucket).href)
        try {
          const file = await openStoredBuildFile({ store, buildId, kind: 'memfile' })
          try {
            assert.equal(file.size, src.length, what)
            assert.ok(Buffer.from(await file.read(0, src.length)).equals(src), `${what}: whole file`)
            for (const [offset, length] of [...rangesOf(src.length), [2 * F - 1, 2 * F + 2], [src.length - 150, 150]]) {
              const got = Buffer.from(await file.read(offset, length))
              assert.ok(got.equals(src.subarray(offset, offset + length)), `${what}: [${offset}, +${length})`)
            }
          } finally {
            await file.close()
          }
        } finally {
          await store.close()
        }
        const restored = join(dir, `restored${fileNo++}`)
        const u = await runCli(['unpack', join(bucket, buildId), '--kind', 'memfile', '--out', restored])
        assert.equal(u.code, 0, `${what}: ${u.stderr}`)
        assert.ok((await readFile(restored)).equals(src), `${what}: unpack`)
      }
    }
  })

  test('raw ranges larger than one copy piece (4 MiB) cross piece boundaries intact', async () => {
    const MiB = 1024 * 1024
    const src = vmLike(8 * MiB + 4099, 3)
    const data = await fileWith(src)
    for (const workers of [1, 2]) {
      for (const [offset, length] of [
        [0, src.length],
        [4 * MiB - 10, 4 * MiB + 20],
        [1, src.length - 1],
      ]) {
        await checkRange(data, null, src, offset, length, workers)
      }
    }
  })
})

describe('input errors', () => {
  test('an input shorter than the range asked: rejects naming the offset; the sink is never called after', async () => {
    const path = await fileWith(vmLike(2 * F + 10, 4))
    for (const workers of [1, 2]) {
      const emitted: number[] = []
      let rejected = false
      let late = 0
      let inSink = 0
      await withFile(path, 'r', async (fh) => {
        const sink = async (_stored: Uint8Array, sizeU: number) => {
          if (rejected) late++
          inSink++
          await new Promise((r) => setImmediate(r)) // a sink that takes a turn, as a real write does
          emitted.push(sizeU)
          inSink--
        }
        await assert.rejects(frameFile(fh, { codec: 'zstd', frameSize: F, workers }, sink, { offset: 0, length: 4 * F }), (err: Error) => {
          rejected = true
          assert.equal(inSink, 0, 'a sink call was still running when frameFile rejected')
          assert.ok(err instanceof InvalidArgumentError, String(err))
          assert.match(err.message, new RegExp(`file ended at ${2 * F + 10}, expected ${F - 10} more bytes`))
          return true
        })
        // Work frameFile left queued would run during these turns (a pool round trip, then a loop turn).
        await fh.stat()
        await new Promise((r) => setImmediate(r))
      })
      assert.equal(late, 0, 'sink called after frameFile rejected')
      // Only whole frames read before the end can have been emitted: never the short third one.
      assert.ok(emitted.every((s) => s === F) && emitted.length <= 2, `emitted ${emitted}`)
    }
  })

  test('a read error (EISDIR) rejects with that error, not a hang', async () => {
    const sub = join(dir, 'a-directory')
    await mkdir(sub)
    let calls = 0
    await withFile(sub, 'r', async (fh) => {
      const run = frameFile(fh, { codec: 'lz4', frameSize: F, workers: 2 }, async () => {
        calls++
      }, { offset: 0, length: 3 * F })
      await assert.rejects(run, { code: 'EISDIR' })
    })
    assert.equal(calls, 0)
  })

  test('an aborted framing rejects with the reason and emits nothing', async () => {
    const path = await fileWith(vmLike(3 * F, 5))
    const ctl = new AbortController()
    ctl.abort(new Error('stop now'))
    let calls = 0
    await withFile(path, 'r', (fh) =>
      assert.rejects(
        frameFile(fh, { codec: 'zstd', frameSize: F, workers: 2, signal: ctl.signal }, async () => {
          calls++
        }),
        /stop now/,
      ),
    )
    assert.equal(calls, 0)
  })

  test('pack: an input truncated while it is framed fails clearly and leaves no output files', async () => {
    const input = await fileWith(vmLike(64 * F, 6))
    const outDir = join(dir, 'packed')
    let truncated = false
    const run = pack({
      input,
      outDir,
      kind: 'memfile',
      buildId: '0f8e0c4a-1b2c-4d5e-8f90-a1b2c3d4e5f6',
      codec: 'zstd',
      level: 1,
      frameSize: F,
      blockSize: 4096,
      workers: 2,
      onProgress: () => {
        // After the first frame is out, the file shrinks under the reader (a VM still writing it, a bad disk).
        if (!truncated) truncateSync(input, 3 * F)
        truncated = true
      },
    })
    await assert.rejects(run, (err: Error) => {
      assert.ok(err instanceof InvalidArgumentError, String(err))
      assert.match(err.message, /file ended at \d+, expected \d+ more bytes/)
      return true
    })
    assert.deepEqual(await readdir(outDir), [], 'no data file, temporary file or header left behind')
  })

  test('writeFramedRange: a truncated data file or a corrupt frame rejects; no write lands after the rejection', async () => {
    const src = vmLike(8 * F + 100, 8)
    src.fill(0, 2 * F, 3 * F) // an all-zero frame before the corrupt one: it must be written too, as zeros
    const framed = await frame(src, 'zstd', 2)
    const stored = Buffer.concat(framed.emitted.map((e) => e.stored))
    const last = framed.table.frames.at(-1)!
    const corrupt = Buffer.from(stored)
    const mid = framed.table.frames[5]
    corrupt[mid.startC + (mid.sizeC >> 1)] ^= 0x5a
    const cases: [string, Buffer, RegExp][] = [
      ['truncated', stored.subarray(0, last.startC + 3), /data file truncated/],
      ['corrupt', corrupt, /zstd frame does not decode/],
    ]
    for (const [what, bytes, message] of cases) {
      const data = await fileWith(bytes)
      for (const workers of [1, 2]) {
        // The output starts as a sentinel, not zeros: a frame left unwritten is told apart from a zero frame.
        const outPath = await fileWith(Buffer.alloc(src.length, SENTINEL))
        await withFile(data, 'r', (fh) =>
          withFile(outPath, 'r+', async (file) => {
            const { out, writes } = countingWrites(file)
            await assert.rejects(writeFramedRange(fh, framed.table, 0, src.length, out, 0, { workers }), (err: Error) => {
              writes.rejected = true
              assert.equal(writes.started, writes.finished, `${what}, ${workers} workers: a write was in flight at the rejection`)
              assert.ok(err instanceof CorruptFrameError, `${what}: ${err}`)
              assert.match(err.message, message)
              return true
            })
            // Work left queued would run during these turns (a pool round trip, then a loop turn).
            const atReject = await readFile(outPath)
            await new Promise((r) => setImmediate(r))
            assert.equal(writes.late, 0, `${what}, ${workers} workers: a write started after the rejection`)
            assert.ok((await readFile(outPath)).equals(atReject), `${what}, ${workers} workers: the file changed after the rejection`)
          }),
        )
        // Each frame is either untouched (the sentinel) or exactly its source bytes, zero frames included;
        // the bad frame is never written.
        const written = await readFile(outPath)
        assert.equal(written.length, src.length, `${what}: nothing written past the file`)
        if (what === 'truncated') assert.ok(!written.subarray(0, F).every((b) => b === SENTINEL), 'the frames before the cut were written')
        for (const [i, f] of framed.table.frames.entries()) {
          const got = written.subarray(f.startU, f.startU + f.sizeU)
          const untouched = got.every((b) => b === SENTINEL)
          assert.ok(untouched || got.equals(src.subarray(f.startU, f.startU + f.sizeU)), `${what}, ${workers} workers: frame ${i} written wrong`)
          if (what === 'corrupt' && i === 5) assert.ok(untouched, `${what}: the corrupt frame was written`)
        }
      }
    }
    // Aborted before it starts: nothing is written at all.
    const data = await fileWith(stored)
    const outPath = join(dir, `out${fileNo++}`)
    const ctl = new AbortController()
    ctl.abort(new Error('cancelled'))
    await withFile(data, 'r', (fh) =>
      withFile(outPath, 'w', (out) => assert.rejects(writeFramedRange(fh, framed.table, 0, src.length, out, 0, { signal: ctl.signal }), /cancelled/)),
    )
    assert.equal((await stat(outPath)).size, 0)
  })
})
