import assert from 'node:assert/strict'
import { test } from 'node:test'
import { randomBuildId } from '../../src/format/uuid.ts'
import { traceObjectName } from '../../src/format/layout.ts'
import { type AccessTrace, decodeTrace, encodeTrace, MAX_TRACE_BYTES, MAX_TRACE_ENTRIES } from '../../src/prefetch/trace.ts'

const id = randomBuildId()
const trace: AccessTrace = {
  buildId: id,
  kind: 'memfile',
  size: 64 * 1024 * 1024,
  entries: [
    { offset: 8 * 1024 * 1024, ms: 0 },
    { offset: 4096, ms: 3 },
    { offset: 40 * 1024 * 1024, ms: 71 },
  ],
}

test('a trace round-trips and names its object beside the build', () => {
  const bytes = encodeTrace(trace)
  assert.equal(bytes.byteLength, 48 + 3 * 8 + 32)
  assert.deepEqual(decodeTrace(bytes, { buildId: id, kind: 'memfile', size: trace.size }), trace)
  assert.equal(traceObjectName(id, 'memfile'), `${id}/memfile.prefetch`)
  assert.equal(traceObjectName(id, 'rootfs'), `${id}/rootfs.ext4.prefetch`)
})

test('every truncation of a trace is refused with ERR_FORMAT', () => {
  const bytes = encodeTrace(trace)
  for (let n = 0; n < bytes.byteLength; n++) {
    assert.throws(() => decodeTrace(bytes.subarray(0, n)), { code: 'ERR_FORMAT' }, `cut at ${n}`)
  }
})

test('every flipped bit of a trace is refused (checksum, magic, version)', () => {
  const bytes = encodeTrace(trace)
  for (let i = 0; i < bytes.byteLength; i++) {
    const bad = Buffer.from(bytes)
    bad[i] ^= 0x10
    assert.throws(() => decodeTrace(bad), (err: { code?: string }) => err.code === 'ERR_FORMAT' || err.code === 'ERR_LIMIT', `byte ${i}`)
  }
})

test('a trace of another build, kind or size is refused', () => {
  const bytes = encodeTrace(trace)
  assert.throws(() => decodeTrace(bytes, { buildId: randomBuildId(), kind: 'memfile' }), { code: 'ERR_FORMAT', message: /expected/ })
  assert.throws(() => decodeTrace(bytes, { buildId: id, kind: 'rootfs' }), { code: 'ERR_FORMAT' })
  assert.throws(() => decodeTrace(bytes, { buildId: id, kind: 'memfile', size: 4096 }), { code: 'ERR_FORMAT', message: /file size/ })
})

test('an oversized trace or entry count is refused before anything is allocated', () => {
  assert.throws(() => decodeTrace(new Uint8Array(MAX_TRACE_BYTES + 1)), { code: 'ERR_LIMIT' })
  const bytes = Buffer.from(encodeTrace(trace))
  bytes.writeUInt32LE(MAX_TRACE_ENTRIES + 1, 36)
  assert.throws(() => decodeTrace(bytes), { code: 'ERR_LIMIT' })
  bytes.writeUInt32LE(0xffffffff, 36)
  assert.throws(() => decodeTrace(bytes), { code: 'ERR_LIMIT' })
})

test('an entry past the file size is refused', () => {
  const bytes = encodeTrace({ ...trace, entries: [{ offset: trace.size, ms: 1 }] })
  assert.throws(() => decodeTrace(bytes), { code: 'ERR_FORMAT', message: /below the file size/ })
})
