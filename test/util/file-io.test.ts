/**
 * The positional read/write loops: a real temp file for the end-of-file cases, and a handle that
 * moves at most 3 bytes a call for the short reads and writes real files rarely show.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { type FileHandle, mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { readExactly, readUpTo, writeFully } from '../../src/util/file-io.ts'

/** A FileHandle over `backing` whose every read and write moves at most 3 bytes. */
function tricklingHandle(backing: Buffer): FileHandle {
  const step = 3
  return {
    async read(buf: Uint8Array, offset: number, length: number, position: number) {
      const n = Math.max(0, Math.min(step, length, backing.byteLength - position))
      buf.set(backing.subarray(position, position + n), offset)
      return { bytesRead: n, buffer: buf }
    },
    async write(data: Uint8Array, offset: number, length: number, position: number) {
      const n = Math.min(step, length)
      backing.set(data.subarray(offset, offset + n), position)
      return { bytesWritten: n, buffer: data }
    },
  } as unknown as FileHandle
}

test('short reads and writes are looped until done; every byte matches the source', async () => {
  const src = randomBytes(1000)
  const fh = tricklingHandle(src)
  const buf = Buffer.alloc(500)
  assert.equal(await readUpTo(fh, buf, 100), 500)
  assert.deepEqual(buf, src.subarray(100, 600))
  const exact = Buffer.alloc(64)
  await readExactly(fh, exact, 936, () => new Error('not short'))
  assert.deepEqual(exact, src.subarray(936))
  const dst = Buffer.alloc(1000)
  const data = randomBytes(777)
  await writeFully(tricklingHandle(dst), data, 200)
  assert.deepEqual(dst.subarray(200, 977), data)
  assert.ok(dst.subarray(0, 200).every((b) => b === 0) && dst.subarray(977).every((b) => b === 0), 'nothing written outside')
})

test('on a real file: readUpTo stops at the end, readExactly throws the caller error with the count it had, writeFully writes all', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-file-io-'))
  try {
    const path = join(dir, 'f')
    const data = randomBytes(300_000)
    const w = await open(path, 'w')
    try {
      await writeFully(w, data, 0)
    } finally {
      await w.close()
    }
    assert.deepEqual(await readFile(path), data)
    const fh = await open(path, 'r')
    try {
      const buf = Buffer.alloc(1000)
      assert.equal(await readUpTo(fh, buf, data.byteLength - 10), 10, 'ten bytes before the end')
      assert.deepEqual(buf.subarray(0, 10), data.subarray(-10))
      await assert.rejects(
        readExactly(fh, Buffer.alloc(1000), data.byteLength - 10, (done) => new RangeError(`had ${done}`)),
        { name: 'RangeError', message: 'had 10' },
      )
      assert.equal(await readUpTo(fh, Buffer.alloc(10), data.byteLength + 5), 0, 'past the end: nothing')
      assert.equal(await readUpTo(fh, Buffer.alloc(0), 0), 0, 'an empty buffer is full at once')
    } finally {
      await fh.close()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
