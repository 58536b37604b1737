/** NBD message encoding and parsing against byte layouts written out by hand from the protocol document. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { blockStatusChunk, errorChunk, handshakeGreeting, optionReply, parseRequest } from '../../src/nbd/protocol.ts'

test('regression: a request offset is read from bytes 16-23 (it was read from 12-19, across the cookie)', () => {
  const b = Buffer.from('25609513' + '0001' + '0000' + '0102030405060708' + '0000000000123000' + '00001000', 'hex')
  const r = parseRequest(b)
  assert.equal(r.flags, 1)
  assert.equal(r.type, 0)
  assert.equal(r.cookie.toString('hex'), '0102030405060708')
  assert.equal(r.offset, 0x123000)
  assert.equal(r.length, 4096)
})

test('offsets beyond 2^53 parse as out of range; a wrong magic is a protocol error', () => {
  const b = Buffer.alloc(28)
  b.writeUInt32BE(0x25609513, 0)
  b.writeBigUInt64BE(1n << 63n, 16)
  assert.equal(parseRequest(b).offset, Number.POSITIVE_INFINITY)
  b.writeUInt32BE(0xdeadbeef, 0)
  assert.throws(() => parseRequest(b), { code: 'ERR_NBD_PROTOCOL', message: /expected request magic 0x25609513, found 0xdeadbeef/ })
})

test('greeting, option reply, error and block status chunks have the protocol layout', () => {
  assert.equal(handshakeGreeting().toString('hex'), `${Buffer.from('NBDMAGICIHAVEOPT').toString('hex')}0003`)
  assert.equal(optionReply(7, 1).toString('hex'), '0003e889045565a9' + '00000007' + '00000001' + '00000000')
  const cookie = Buffer.from('0102030405060708', 'hex')
  assert.equal(errorChunk(cookie, 22, 'no').toString('hex'), '668e33ef' + '0001' + '8001' + '0102030405060708' + '00000008' + '00000016' + '0002' + '6e6f')
  const bs = blockStatusChunk(cookie, 1, [
    { length: 4096, flags: 0 },
    { length: 8192, flags: 3 },
  ])
  assert.equal(bs.toString('hex'), '668e33ef' + '0001' + '0005' + '0102030405060708' + '00000014' + '00000001' + '00001000' + '00000000' + '00002000' + '00000003')
})
