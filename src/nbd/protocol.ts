/**
 * The NBD protocol's constants and message encoders (fixed newstyle handshake, simple and structured
 * replies), as set out in the protocol document of the NetworkBlockDevice project (doc/proto.md).
 * Everything on the wire is big-endian.
 */
import { SnapswarmError } from '../errors.ts'

export const NBD_MAGIC = 0x4e42444d41474943n // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n // "IHAVEOPT"
export const OPT_REPLY_MAGIC = 0x3e889045565a9n
export const REQUEST_MAGIC = 0x25609513
export const SIMPLE_REPLY_MAGIC = 0x67446698
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef

// Handshake flags (server) and client flags.
export const FLAG_FIXED_NEWSTYLE = 1
export const FLAG_NO_ZEROES = 2
export const CLIENT_FLAG_FIXED_NEWSTYLE = 1
export const CLIENT_FLAG_NO_ZEROES = 2

// Options.
export const OPT = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const

// Option replies.
export const REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
  ERR_TOO_BIG: 0x80000009,
} as const

export const INFO = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const

// Transmission flags.
export const TFLAG = {
  HAS_FLAGS: 1,
  READ_ONLY: 2,
  SEND_FLUSH: 4,
  SEND_FUA: 8,
  SEND_TRIM: 32,
  SEND_WRITE_ZEROES: 64,
  SEND_DF: 128,
  CAN_MULTI_CONN: 256,
  SEND_CACHE: 1024,
} as const

// Commands and command flags.
export const CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7 } as const
export const CMD_FLAG = { FUA: 1, NO_HOLE: 2, DF: 4, REQ_ONE: 8, FAST_ZERO: 16 } as const
export const COMMAND_NAMES: Record<number, string> = { 0: 'read', 1: 'write', 2: 'disc', 3: 'flush', 4: 'trim', 5: 'cache', 6: 'write_zeroes', 7: 'block_status' }

// Structured reply chunk types and flags.
export const REPLY_FLAG_DONE = 1
export const REPLY_TYPE = { NONE: 0, OFFSET_DATA: 1, OFFSET_HOLE: 2, BLOCK_STATUS: 5, ERROR: 0x8001 } as const

// base:allocation flags.
export const STATE_HOLE = 1
export const STATE_ZERO = 2
export const BASE_ALLOCATION = 'base:allocation'
/** The one metadata context this server offers gets this id. */
export const BASE_ALLOCATION_ID = 1

// Error values of the transmission phase.
export const NBD_EPERM = 1
export const NBD_EIO = 5
export const NBD_ENOMEM = 12
export const NBD_EINVAL = 22
export const NBD_ENOSPC = 28
export const NBD_EOVERFLOW = 75
export const NBD_ENOTSUP = 95
export const NBD_ESHUTDOWN = 108

/** Request header: magic u32, flags u16, type u16, cookie u64, offset u64, length u32. */
export const REQUEST_BYTES = 28
/** Option header: IHAVEOPT u64, option u32, length u32. */
export const OPTION_HEADER_BYTES = 16
/** The protocol's limit on strings (export names, messages). */
export const MAX_STRING = 4096

/** An NBD request or reply that breaks the protocol: the connection is closed. */
export class NbdProtocolError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_NBD_PROTOCOL', message)
  }
}

/** A failed command: the NBD error value the client gets, and a message for it. */
export class NbdCommandError extends SnapswarmError {
  readonly errno: number
  constructor(errno: number, message: string) {
    super('ERR_NBD_COMMAND', message)
    this.errno = errno
  }
}

export function handshakeGreeting(): Buffer {
  const b = Buffer.alloc(18)
  b.writeBigUInt64BE(NBD_MAGIC, 0)
  b.writeBigUInt64BE(IHAVEOPT, 8)
  b.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16)
  return b
}

export function optionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.allocUnsafe(20 + data.byteLength)
  b.writeBigUInt64BE(OPT_REPLY_MAGIC, 0)
  b.writeUInt32BE(option, 8)
  b.writeUInt32BE(type, 12)
  b.writeUInt32BE(data.byteLength, 16)
  data.copy(b, 20)
  return b
}

export function infoExport(size: number, flags: number): Buffer {
  const b = Buffer.allocUnsafe(12)
  b.writeUInt16BE(INFO.EXPORT, 0)
  b.writeBigUInt64BE(BigInt(size), 2)
  b.writeUInt16BE(flags, 10)
  return b
}

export function infoBlockSize(min: number, preferred: number, max: number): Buffer {
  const b = Buffer.allocUnsafe(14)
  b.writeUInt16BE(INFO.BLOCK_SIZE, 0)
  b.writeUInt32BE(min, 2)
  b.writeUInt32BE(preferred, 6)
  b.writeUInt32BE(max, 10)
  return b
}

export function infoString(type: number, text: string): Buffer {
  const s = Buffer.from(text, 'utf8')
  const b = Buffer.allocUnsafe(2 + s.byteLength)
  b.writeUInt16BE(type, 0)
  s.copy(b, 2)
  return b
}

/** A u32 then UTF-8 strings: the shape of NBD_REP_SERVER and NBD_REP_META_CONTEXT data. */
function u32Then(n: number, ...texts: string[]): Buffer {
  const head = Buffer.allocUnsafe(4)
  head.writeUInt32BE(n, 0)
  return Buffer.concat([head, ...texts.map((t) => Buffer.from(t, 'utf8'))])
}

/** NBD_REP_SERVER data: the name's length, the name, then a description. */
export function lengthPrefixed(text: string, rest = ''): Buffer {
  return u32Then(Buffer.byteLength(text, 'utf8'), text, rest)
}

export function metaContextReply(id: number, name: string): Buffer {
  return u32Then(id, name)
}

/** The answer to NBD_OPT_EXPORT_NAME: size, transmission flags, then 124 zero bytes unless the client said NO_ZEROES. */
export function exportNameReply(size: number, flags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(noZeroes ? 10 : 134)
  b.writeBigUInt64BE(BigInt(size), 0)
  b.writeUInt16BE(flags, 8)
  return b
}

export interface NbdRequest {
  readonly flags: number
  readonly type: number
  /** The client's opaque 8 bytes, echoed in the reply. */
  readonly cookie: Buffer
  /** Offsets above 2^53 are passed as Infinity: always out of range. */
  readonly offset: number
  readonly length: number
}

export function parseRequest(b: Buffer): NbdRequest {
  const magic = b.readUInt32BE(0)
  if (magic !== REQUEST_MAGIC) throw new NbdProtocolError(`expected request magic 0x25609513, found 0x${magic.toString(16)}`)
  const off = b.readBigUInt64BE(16)
  return {
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    cookie: Buffer.from(b.subarray(8, 16)),
    offset: off > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(off),
    length: b.readUInt32BE(24),
  }
}

export function simpleReplyHeader(cookie: Buffer, error: number): Buffer {
  return writeSimpleReplyHeader(Buffer.allocUnsafe(16), cookie, error)
}

/** The 16-byte simple reply header at the start of `b`. */
export function writeSimpleReplyHeader(b: Buffer, cookie: Buffer, error: number): Buffer {
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0)
  b.writeUInt32BE(error, 4)
  cookie.copy(b, 8)
  return b
}

/** A structured reply chunk's 20-byte header; `extra` bytes of the payload follow it in the same buffer. */
export function chunkHeader(cookie: Buffer, flags: number, type: number, length: number, extra = 0): Buffer {
  return writeChunkHeader(Buffer.allocUnsafe(20 + extra), cookie, flags, type, length)
}

/** The 20-byte structured reply chunk header at the start of `b`. */
export function writeChunkHeader(b: Buffer, cookie: Buffer, flags: number, type: number, length: number): Buffer {
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0)
  b.writeUInt16BE(flags, 4)
  b.writeUInt16BE(type, 6)
  cookie.copy(b, 8)
  b.writeUInt32BE(length, 16)
  return b
}

export function errorChunk(cookie: Buffer, errno: number, message: string): Buffer {
  const msg = Buffer.from(message.slice(0, 1024), 'utf8').subarray(0, MAX_STRING)
  const b = chunkHeader(cookie, REPLY_FLAG_DONE, REPLY_TYPE.ERROR, 6 + msg.byteLength, 6 + msg.byteLength)
  b.writeUInt32BE(errno, 20)
  b.writeUInt16BE(msg.byteLength, 24)
  msg.copy(b, 26)
  return b
}

export interface Extent {
  readonly length: number
  readonly flags: number
}

export function blockStatusChunk(cookie: Buffer, contextId: number, extents: readonly Extent[]): Buffer {
  const length = 4 + 8 * extents.length
  const b = chunkHeader(cookie, REPLY_FLAG_DONE, REPLY_TYPE.BLOCK_STATUS, length, length)
  b.writeUInt32BE(contextId, 20)
  let pos = 24
  for (const e of extents) {
    b.writeUInt32BE(e.length, pos)
    b.writeUInt32BE(e.flags, pos + 4)
    pos += 8
  }
  return b
}
