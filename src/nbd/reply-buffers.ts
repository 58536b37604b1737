/**
 * Read reply buffers reused across requests and connections, node-wide, up to `maxBytes` kept. A
 * fresh large buffer costs its page faults (measured: a warm 2 MiB read took ~1 ms with a fresh
 * buffer, ~0.2 ms with a reused one) and every fresh buffer adds garbage-collection work, which
 * shows in the tail latency of small reads. Buffers are kept by exact size: clients use a few
 * request sizes, and a reply must be exactly its size.
 */

/** Below this, Node's own allocator pool serves the buffer. */
const POOL_MIN = 4096

export class ReplyBuffers {
  private readonly free = new Map<number, Buffer[]>()
  private readonly maxBytes: number
  private bytes = 0

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes
  }

  take(n: number): Buffer {
    if (n < POOL_MIN) return Buffer.allocUnsafe(n)
    const list = this.free.get(n)
    const b = list?.pop()
    if (!b) return Buffer.allocUnsafeSlow(n)
    if (list!.length === 0) this.free.delete(n)
    this.bytes -= n
    return b
  }

  /** A buffer nothing refers to any more (the socket took its bytes). */
  give(b: Buffer): void {
    const n = b.byteLength
    if (n < POOL_MIN || n > this.maxBytes) return
    // Full: make room by dropping buffers of other sizes (a client with odd sizes must not pin the pool).
    for (const [size, list] of this.free) {
      if (this.bytes + n <= this.maxBytes) break
      if (size === n) continue
      while (list.length > 0 && this.bytes + n > this.maxBytes) {
        list.pop()
        this.bytes -= size
      }
      if (list.length === 0) this.free.delete(size)
    }
    if (this.bytes + n > this.maxBytes) return
    const list = this.free.get(n)
    if (list) list.push(b)
    else this.free.set(n, [b])
    this.bytes += n
  }
}
