/**
 * A minimal NBD client written for the hostile-client tests: it sends exactly the bytes a test
 * wants (malformed ones too) and parses structured replies, so a test can check each answer.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'

export class RawNbd {
  readonly sock: Socket
  private buf = Buffer.alloc(0)
  private wake: (() => void) | null = null
  closed = false

  private constructor(sock: Socket) {
    this.sock = sock
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      this.poke()
    })
    sock.on('close', () => {
      this.closed = true
      this.poke()
    })
    sock.on('error', () => {})
  }

  static async connect(path: string): Promise<RawNbd> {
    const sock = connect(path)
    await once(sock, 'connect')
    return new RawNbd(sock)
  }

  private poke(): void {
    const w = this.wake
    this.wake = null
    w?.()
  }

  /** Exactly n bytes, or null when the server closed first (bounded by `ms`). */
  async read(n: number, ms = 10_000): Promise<Buffer | null> {
    const deadline = Date.now() + ms
    while (this.buf.byteLength < n) {
      if (this.closed) return null
      if (Date.now() > deadline) throw new Error(`no ${n} bytes from the server within ${ms} ms (have ${this.buf.byteLength})`)
      await new Promise<void>((resolve) => {
        this.wake = resolve
        setTimeout(resolve, 100)
      })
    }
    const out = this.buf.subarray(0, n)
    this.buf = this.buf.subarray(n)
    return Buffer.from(out)
  }

  /** Wait until the server closes the connection (bounded). */
  async waitClosed(ms = 10_000): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    return this.closed
  }

  write(b: Buffer): void {
    this.sock.write(b)
  }

  /** Greeting in, client flags out (fixed newstyle + no zeroes). */
  async greet(clientFlags = 3): Promise<void> {
    const g = await this.read(18)
    if (g?.toString('latin1', 0, 8) !== 'NBDMAGIC' || g.toString('latin1', 8, 16) !== 'IHAVEOPT') throw new Error('no NBD greeting')
    const f = Buffer.alloc(4)
    f.writeUInt32BE(clientFlags)
    this.write(f)
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0), declaredLength = data.byteLength): void {
    const h = Buffer.alloc(16)
    h.write('IHAVEOPT', 0, 'latin1')
    h.writeUInt32BE(option, 8)
    h.writeUInt32BE(declaredLength, 12)
    this.write(Buffer.concat([h, data]))
  }

  /** One option reply: its type and data, or null when the server closed. */
  async optionReply(): Promise<{ option: number; type: number; data: Buffer } | null> {
    const h = await this.read(20)
    if (!h) return null
    const data = await this.read(h.readUInt32BE(16))
    if (!data) return null
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data }
  }

  /** Structured replies, then NBD_OPT_GO for `name`; resolves with the export size. */
  async go(name: string): Promise<number> {
    this.sendOption(8)
    const sr = await this.optionReply()
    if (sr?.type !== 1) throw new Error(`structured replies refused: ${sr?.type}`)
    const n = Buffer.from(name)
    const d = Buffer.alloc(4 + n.byteLength + 2)
    d.writeUInt32BE(n.byteLength)
    n.copy(d, 4)
    this.sendOption(7, d)
    let size = -1
    for (;;) {
      const r = await this.optionReply()
      if (!r) throw new Error('closed during GO')
      if (r.type === 3 && r.data.readUInt16BE(0) === 0) size = Number(r.data.readBigUInt64BE(2))
      if (r.type === 1) return size
      if (r.type >= 0x80000000) throw new Error(`GO refused: 0x${r.type.toString(16)} ${r.data.toString()}`)
    }
  }

  request(type: number, cookie: bigint, offset: bigint, length: number, flags = 0, payload?: Buffer): void {
    const b = Buffer.alloc(28)
    b.writeUInt32BE(0x25609513, 0)
    b.writeUInt16BE(flags, 4)
    b.writeUInt16BE(type, 6)
    b.writeBigUInt64BE(cookie, 8)
    b.writeBigUInt64BE(offset, 16)
    b.writeUInt32BE(length, 24)
    this.write(payload ? Buffer.concat([b, payload]) : b)
  }

  /** A simple reply: its cookie, error, and `dataLength` bytes of data when the error is 0. */
  async simpleReply(dataLength: number): Promise<{ cookie: bigint; error: number; data: Buffer } | null> {
    const h = await this.read(16)
    if (!h) return null
    if (h.readUInt32BE(0) !== 0x67446698) throw new Error(`expected a simple reply, found magic 0x${h.readUInt32BE(0).toString(16)}`)
    const error = h.readUInt32BE(4)
    const data = error === 0 ? await this.read(dataLength) : Buffer.alloc(0)
    return { cookie: h.readBigUInt64BE(8), error, data: data ?? Buffer.alloc(0) }
  }

  /** One whole structured reply (all chunks up to DONE): its cookie, error (0 = ok) and read data. */
  async reply(ms?: number): Promise<{ cookie: bigint; error: number; data: Buffer; message: string } | null> {
    const parts: Buffer[] = []
    let error = 0
    let message = ''
    for (;;) {
      const h = await this.read(20, ms)
      if (!h) return null
      if (h.readUInt32BE(0) !== 0x668e33ef) throw new Error(`expected a structured reply, found magic 0x${h.readUInt32BE(0).toString(16)}`)
      const flags = h.readUInt16BE(4)
      const type = h.readUInt16BE(6)
      const cookie = h.readBigUInt64BE(8)
      const payload = await this.read(h.readUInt32BE(16), ms)
      if (!payload) return null
      if (type === 1) parts.push(payload.subarray(8))
      if (type & 0x8000) {
        error = payload.readUInt32BE(0)
        message = payload.toString('utf8', 6, 6 + payload.readUInt16BE(4))
      }
      if (flags & 1) return { cookie, error, data: Buffer.concat(parts), message }
    }
  }

  /** Stop taking bytes from the socket: the server's replies pile up in the socket buffers. */
  stopReading(): void {
    this.sock.pause()
  }

  destroy(): void {
    this.sock.destroy()
  }
}
