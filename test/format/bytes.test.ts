import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ByteReader, ByteWriter } from '../../src/format/bytes.ts'
import { FormatError, InvalidArgumentError } from '../../src/errors.ts'
import { isBuildId, parseBuildId, randomBuildId, uuidFromBytes, uuidToBytes } from '../../src/format/uuid.ts'
import { hex } from './helpers.ts'

describe('ByteWriter / ByteReader', () => {
  it('round-trips every width, little-endian, growing past the initial capacity', () => {
    const w = new ByteWriter(4)
    w.u8(0xab).u32(0xdeadbeef).i32(-2).u64(Number.MAX_SAFE_INTEGER).i64(-5).i64(Number.MIN_SAFE_INTEGER)
    w.uuid('00112233-4455-6677-8899-aabbccddeeff').bytes(Uint8Array.of(9, 8, 7))
    const b = w.finish()
    assert.deepEqual(b.subarray(0, 5), Uint8Array.of(0xab, 0xef, 0xbe, 0xad, 0xde))
    assert.deepEqual(b.subarray(9, 17), hex('ffffffffffff1f00'))
    assert.deepEqual(b.subarray(17, 25), hex('fbffffffffffffff'))
    const r = new ByteReader(b, 'test')
    assert.equal(r.u8('a'), 0xab)
    assert.equal(r.u32('b'), 0xdeadbeef)
    assert.equal(r.i32('c'), -2)
    assert.equal(r.u64('d'), Number.MAX_SAFE_INTEGER)
    assert.equal(r.i64('e'), -5)
    assert.equal(r.i64('f'), Number.MIN_SAFE_INTEGER)
    assert.equal(r.uuid('g'), '00112233-4455-6677-8899-aabbccddeeff')
    assert.deepEqual(r.bytes(3, 'h'), Uint8Array.of(9, 8, 7))
    r.expectEnd()
  })

  it('rejects u64 above 2^53-1 and i64 below its minimum, naming field, value and offset', () => {
    const r = new ByteReader(hex('0000000000002000 ffffffffffffffff'), 'hdr')
    assert.throws(() => r.u64('size'), { name: 'FormatError', message: 'hdr: size: expected u64 <= 2^53-1, found 9007199254740992 at offset 0' })
    const r2 = new ByteReader(hex('ffffffffffffffff'))
    assert.throws(() => r2.i64('startU', 0), /startU: expected i64 in \[0, 2\^53-1\], found -1 at offset 0/)
    assert.throws(() => new ByteReader(hex('00000000')).i32('sizeU', 1), FormatError)
  })

  it('checks lengths against what remains before reading or allocating', () => {
    const r = new ByteReader(new Uint8Array(10), 'body')
    r.u32('x')
    assert.throws(() => r.bytes(2 ** 40, 'blob'), { message: 'body: blob: expected 1099511627776 bytes, found 6 bytes left at offset 4' })
    assert.throws(() => r.u64('y'), /expected 8 bytes, found 6 bytes left at offset 4/)
    assert.throws(() => r.bytes(-1, 'neg'), FormatError)
    assert.throws(() => r.expectEnd(), /6 trailing bytes/)
    assert.equal(r.offset, 4, 'a failed read does not advance')
  })

  it('bytes() copies, even from a Buffer (whose slice() is a view that would pin the input)', () => {
    const input = Buffer.from([1, 2, 3, 4])
    const out = new ByteReader(input).bytes(2, 'x')
    input[0] = 9
    assert.deepEqual(out, Uint8Array.of(1, 2))
    assert.ok(!Buffer.isBuffer(out))
  })

  it('refuses out-of-range values on write', () => {
    const w = new ByteWriter()
    assert.throws(() => w.u32(-1), InvalidArgumentError)
    assert.throws(() => w.u64(2 ** 53), InvalidArgumentError)
    assert.throws(() => w.i32(2 ** 31), InvalidArgumentError)
    assert.throws(() => w.u8(1.5), InvalidArgumentError)
  })
})

describe('uuid', () => {
  it('converts between canonical strings and raw bytes', () => {
    const id = '0f8e6a3c-1b2d-4e5f-8a9b-0c1d2e3f4a5b'
    assert.deepEqual(uuidToBytes(id), hex('0f8e6a3c1b2d4e5f8a9b0c1d2e3f4a5b'))
    assert.equal(uuidFromBytes(uuidToBytes(id)), id)
    assert.equal(parseBuildId('0F8E6A3C-1B2D-4E5F-8A9B-0C1D2E3F4A5B'), id)
    assert.ok(isBuildId(id))
    assert.ok(!isBuildId(id.toUpperCase()))
    assert.ok(!isBuildId('0f8e6a3c1b2d4e5f8a9b0c1d2e3f4a5b'))
    assert.ok(isBuildId(randomBuildId()))
    assert.throws(() => parseBuildId('nope'), InvalidArgumentError)
    assert.throws(() => uuidFromBytes(new Uint8Array(15)), InvalidArgumentError)
  })
})
