/**
 * Exact-length reads from a socket in paused mode: nothing is read from the kernel until the
 * connection asks for it, so a connection that stops asking (its in-flight budget is full) leaves the
 * client's bytes in the socket buffers and the client blocks: memory stays bounded.
 */
import type { Socket } from 'node:net'
import { NbdProtocolError } from './protocol.ts'

/** The client closed the connection (cleanly or not) before the bytes a message needs arrived. */
export class ClientClosedError extends NbdProtocolError {
  constructor(wanted: number) {
    super(`the client closed the connection while ${wanted} more bytes were expected`)
  }
}

/** The most one read asks of the stream at once. */
const PIECE = 256 * 1024

export class SocketReader {
  private readonly sock: Socket
  private ended = false
  private wake: (() => void) | null = null

  constructor(sock: Socket) {
    this.sock = sock
    const poke = () => {
      const w = this.wake
      this.wake = null
      w?.()
    }
    sock.on('readable', poke)
    const end = () => {
      this.ended = true
      poke()
    }
    sock.on('end', end)
    sock.on('close', end)
    sock.on('error', end)
  }

  /**
   * Exactly `n` bytes (n ≤ what the caller bounded), or ClientClosedError. Large reads are taken a
   * piece at a time: asking the stream for `n` at once would raise its buffer limit to `n` for good,
   * and a paused connection would then keep that much of the client's data in memory.
   */
  async read(n: number): Promise<Buffer> {
    if (n <= PIECE) return this.readPiece(n)
    const out = Buffer.allocUnsafe(n)
    for (let pos = 0; pos < n; ) {
      const b = await this.readPiece(Math.min(PIECE, n - pos))
      b.copy(out, pos)
      pos += b.byteLength
    }
    return out
  }

  private async readPiece(n: number): Promise<Buffer> {
    if (n === 0) return Buffer.alloc(0)
    for (;;) {
      const b = this.sock.read(n) as Buffer | null
      if (b) {
        if (b.byteLength < n) throw new ClientClosedError(n - b.byteLength)
        return b
      }
      if (this.ended || this.sock.destroyed) throw new ClientClosedError(n)
      await new Promise<void>((resolve) => {
        this.wake = resolve
      })
    }
  }

  /** Read and drop `n` bytes, a bounded piece at a time (a payload the server refuses). */
  async skip(n: number): Promise<void> {
    for (let left = n; left > 0; ) {
      const step = Math.min(left, PIECE)
      await this.readPiece(step)
      left -= step
    }
  }
}
