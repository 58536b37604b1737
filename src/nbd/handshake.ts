/**
 * The fixed newstyle handshake of one NBD connection: options until the client picks an export
 * (NBD_OPT_GO or NBD_OPT_EXPORT_NAME) or leaves. Every length the client sends is bounded before
 * anything is read for it; an option this server does not know gets NBD_REP_ERR_UNSUP and the
 * haggling goes on. TLS is not offered: NBD_OPT_STARTTLS gets NBD_REP_ERR_POLICY (the socket is the
 * node's unix socket or a loopback address unless configured otherwise).
 */
import type { Socket } from 'node:net'
import type { ExportRegistry, NbdExport } from './exports.ts'
import {
  BASE_ALLOCATION,
  BASE_ALLOCATION_ID,
  CLIENT_FLAG_FIXED_NEWSTYLE,
  CLIENT_FLAG_NO_ZEROES,
  exportNameReply,
  handshakeGreeting,
  IHAVEOPT,
  INFO,
  infoBlockSize,
  infoExport,
  infoString,
  lengthPrefixed,
  MAX_STRING,
  metaContextReply,
  NbdProtocolError,
  OPT,
  OPTION_HEADER_BYTES,
  optionReply,
  REP,
  TFLAG,
} from './protocol.ts'
import type { SocketReader } from './socket-reader.ts'

/** Option data beyond this is refused (NBD_REP_ERR_TOO_BIG) and the connection closed: names are ≤ 4 KiB. */
export const MAX_OPTION_BYTES = 16 * 1024
/** Options one connection may send before it picks an export: a client looping on options is cut. */
const MAX_OPTIONS = 1024
/** The largest request payload (READ / WRITE length) this server takes: the protocol's 32 MiB. */
export const MAX_PAYLOAD = 32 * 1024 * 1024

export interface Negotiated {
  readonly export: NbdExport
  readonly structured: boolean
  /** base:allocation was selected for this export. */
  readonly blockStatus: boolean
}

interface State {
  noZeroes: boolean
  structured: boolean
  /** The export base:allocation was last selected for, if any. */
  metaExport: string | null
}

export class Handshake {
  private readonly sock: Socket
  private readonly reader: SocketReader
  private readonly exports: ExportRegistry
  private readonly state: State = { noZeroes: false, structured: false, metaExport: null }

  constructor(sock: Socket, reader: SocketReader, exports: ExportRegistry) {
    this.sock = sock
    this.reader = reader
    this.exports = exports
  }

  /** The negotiated export, or null when the client aborted. Protocol errors throw (the caller closes). */
  async run(): Promise<Negotiated | null> {
    this.sock.write(handshakeGreeting())
    const clientFlags = (await this.reader.read(4)).readUInt32BE(0)
    if ((clientFlags & ~(CLIENT_FLAG_FIXED_NEWSTYLE | CLIENT_FLAG_NO_ZEROES)) !== 0) throw new NbdProtocolError(`expected client flags within 0x3, found 0x${clientFlags.toString(16)}`)
    this.state.noZeroes = (clientFlags & CLIENT_FLAG_NO_ZEROES) !== 0
    for (let n = 0; n < MAX_OPTIONS; n++) {
      // A client that sends options without reading the replies stops being read too.
      if (this.sock.writableNeedDrain) await drained(this.sock)
      const h = await this.reader.read(OPTION_HEADER_BYTES)
      if (h.readBigUInt64BE(0) !== IHAVEOPT) throw new NbdProtocolError(`expected IHAVEOPT before an option, found 0x${h.readBigUInt64BE(0).toString(16)}`)
      const option = h.readUInt32BE(8)
      const length = h.readUInt32BE(12)
      if (length > MAX_OPTION_BYTES) {
        this.reply(option, REP.ERR_TOO_BIG, `option data of ${length} bytes; this server takes at most ${MAX_OPTION_BYTES}`)
        throw new NbdProtocolError(`option ${option} carries ${length} bytes, expected at most ${MAX_OPTION_BYTES}`)
      }
      const data = await this.reader.read(length)
      const done = await this.option(option, data)
      if (done !== undefined) return done
    }
    throw new NbdProtocolError(`expected an export choice within ${MAX_OPTIONS} options`)
  }

  /** One option; returns the negotiation result when the haggling ends, undefined to go on. */
  private async option(option: number, data: Buffer): Promise<Negotiated | null | undefined> {
    switch (option) {
      case OPT.ABORT:
        this.reply(option, REP.ACK)
        return null
      case OPT.LIST:
        return this.list(option, data)
      case OPT.STARTTLS:
        return this.reply(option, REP.ERR_POLICY, 'TLS is not offered: use the unix socket or a loopback address')
      case OPT.STRUCTURED_REPLY:
        if (data.byteLength !== 0) return this.reply(option, REP.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY carries no data')
        this.state.structured = true
        return this.reply(option, REP.ACK)
      case OPT.INFO:
      case OPT.GO:
        return this.infoOrGo(option, data)
      case OPT.LIST_META_CONTEXT:
      case OPT.SET_META_CONTEXT:
        return this.metaContext(option, data)
      case OPT.EXPORT_NAME:
        return this.exportName(data)
      default:
        return this.reply(option, REP.ERR_UNSUP, `option ${option} is not supported`)
    }
  }

  private async list(option: number, data: Buffer): Promise<undefined> {
    if (data.byteLength !== 0) return this.reply(option, REP.ERR_INVALID, 'NBD_OPT_LIST carries no data')
    for (const e of await this.exports.list()) {
      this.reply(option, REP.SERVER, lengthPrefixed(e.name, `${e.readOnly ? 'read-only' : `read-write through overlay ${e.overlay}`}, ${e.size} bytes`))
    }
    return this.reply(option, REP.ACK)
  }

  private async infoOrGo(option: number, data: Buffer): Promise<Negotiated | undefined> {
    const parsed = parseInfoRequest(data)
    if (typeof parsed === 'string') return this.reply(option, REP.ERR_INVALID, parsed)
    const exp = await this.exports.resolve(parsed.name)
    if (!exp) return this.reply(option, REP.ERR_UNKNOWN, `no export named ${JSON.stringify(parsed.name.slice(0, 200))}`)
    this.reply(option, REP.INFO, infoExport(exp.size, this.transmissionFlags(exp)))
    const [min, preferred] = blockSizes(exp)
    this.reply(option, REP.INFO, infoBlockSize(min, preferred, MAX_PAYLOAD))
    if (parsed.infos.includes(INFO.NAME)) this.reply(option, REP.INFO, infoString(INFO.NAME, exp.name))
    if (parsed.infos.includes(INFO.DESCRIPTION)) this.reply(option, REP.INFO, infoString(INFO.DESCRIPTION, describe(exp)))
    this.reply(option, REP.ACK)
    if (option === OPT.INFO) {
      this.exports.released(exp)
      return undefined
    }
    return { export: exp, structured: this.state.structured, blockStatus: this.state.metaExport === exp.name }
  }

  private async metaContext(option: number, data: Buffer): Promise<undefined> {
    if (!this.state.structured) return this.reply(option, REP.ERR_INVALID, 'negotiate structured replies first')
    const parsed = parseMetaRequest(data)
    if (typeof parsed === 'string') return this.reply(option, REP.ERR_INVALID, parsed)
    if (option === OPT.SET_META_CONTEXT) this.state.metaExport = null
    const exp = await this.exports.resolve(parsed.name)
    if (!exp) return this.reply(option, REP.ERR_UNKNOWN, `no export named ${JSON.stringify(parsed.name.slice(0, 200))}`)
    this.exports.released(exp)
    const list = option === OPT.LIST_META_CONTEXT
    const wanted = list ? parsed.queries.length === 0 || parsed.queries.some((q) => q === 'base:' || q === BASE_ALLOCATION) : parsed.queries.includes(BASE_ALLOCATION)
    if (wanted) {
      this.reply(option, REP.META_CONTEXT, metaContextReply(list ? 0 : BASE_ALLOCATION_ID, BASE_ALLOCATION))
      if (!list) this.state.metaExport = exp.name
    }
    return this.reply(option, REP.ACK)
  }

  private async exportName(data: Buffer): Promise<Negotiated> {
    if (data.byteLength > MAX_STRING) throw new NbdProtocolError(`export name of ${data.byteLength} bytes, expected at most ${MAX_STRING}`)
    const name = data.toString('utf8')
    const exp = await this.exports.resolve(name)
    // The old option has no way to say "unknown": the protocol says to close the connection.
    if (!exp) throw new NbdProtocolError(`NBD_OPT_EXPORT_NAME: no export named ${JSON.stringify(name.slice(0, 200))}`)
    this.sock.write(exportNameReply(exp.size, this.transmissionFlags(exp), this.state.noZeroes))
    return { export: exp, structured: this.state.structured, blockStatus: this.state.metaExport === exp.name }
  }

  private transmissionFlags(exp: NbdExport): number {
    let f = TFLAG.HAS_FLAGS | TFLAG.SEND_FLUSH | TFLAG.SEND_FUA | TFLAG.CAN_MULTI_CONN | TFLAG.SEND_CACHE
    if (this.state.structured) f |= TFLAG.SEND_DF
    f |= exp.readOnly ? TFLAG.READ_ONLY : TFLAG.SEND_TRIM | TFLAG.SEND_WRITE_ZEROES
    return f
  }

  private reply(option: number, type: number, data?: Buffer | string): undefined {
    this.sock.write(optionReply(option, type, typeof data === 'string' ? Buffer.from(data) : data))
    return undefined
  }
}

function drained(sock: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off('drain', done)
      sock.off('close', done)
      resolve()
    }
    sock.on('drain', done)
    sock.on('close', done)
  })
}

/** Minimum 4 KiB (1 when the size is not a multiple of it) and preferred = the build's frame size. */
export function blockSizes(exp: NbdExport): [number, number] {
  const min = exp.size % 4096 === 0 ? 4096 : 1
  const frame = exp.header.builds.get(exp.spec.buildId)?.frames.frames[0]?.sizeU ?? 0
  const preferred = frame > 0 && (frame & (frame - 1)) === 0 && frame <= MAX_PAYLOAD ? Math.max(frame, 4096) : 2 * 1024 * 1024
  return [min, preferred]
}

function describe(exp: NbdExport): string {
  return `snapswarm build ${exp.spec.buildId} ${exp.spec.kind}${exp.overlay ? ` through overlay ${exp.spec.overlay}` : ' (read-only)'}`
}

/** NBD_OPT_INFO / NBD_OPT_GO data: name length u32, name, count u16, count × info type u16. */
function parseInfoRequest(b: Buffer): { name: string; infos: number[] } | string {
  if (b.byteLength < 6) return `expected at least 6 bytes of option data, found ${b.byteLength}`
  const len = b.readUInt32BE(0)
  if (len > MAX_STRING || len > b.byteLength - 6) return `export name length ${len} does not fit the ${b.byteLength} bytes of option data`
  const n = b.readUInt16BE(4 + len)
  if (b.byteLength !== 6 + len + 2 * n) return `expected ${6 + len + 2 * n} bytes for ${n} information requests, found ${b.byteLength}`
  const infos: number[] = []
  for (let i = 0; i < n; i++) infos.push(b.readUInt16BE(6 + len + 2 * i))
  return { name: b.toString('utf8', 4, 4 + len), infos }
}

/** Meta context option data: name length u32, name, count u32, count × (length u32, query). */
function parseMetaRequest(b: Buffer): { name: string; queries: string[] } | string {
  if (b.byteLength < 8) return `expected at least 8 bytes of option data, found ${b.byteLength}`
  const len = b.readUInt32BE(0)
  if (len > MAX_STRING || len > b.byteLength - 8) return `export name length ${len} does not fit the option data`
  const name = b.toString('utf8', 4, 4 + len)
  const n = b.readUInt32BE(4 + len)
  const queries: string[] = []
  let pos = 8 + len
  for (let i = 0; i < n; i++) {
    if (pos + 4 > b.byteLength) return `query ${i} of ${n} is past the end of the option data`
    const qlen = b.readUInt32BE(pos)
    if (qlen > MAX_STRING || pos + 4 + qlen > b.byteLength) return `query ${i} of ${qlen} bytes does not fit the option data`
    queries.push(b.toString('utf8', pos + 4, pos + 4 + qlen))
    pos += 4 + qlen
  }
  if (pos !== b.byteLength) return `${b.byteLength - pos} bytes after the last query`
  return { name, queries }
}
