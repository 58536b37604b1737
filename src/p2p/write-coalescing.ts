/**
 * One socket write per send instead of one per buffer. Noise hands the TCP connection every message as
 * three buffers (2-byte length, ciphertext, tag: nodeNoiseCrypto keeps ciphertext and tag apart to
 * avoid a copy), and @libp2p/tcp writes each with its own `socket.write`: three syscalls per 64 KiB
 * of data, and three per 12-byte yamux window update, which the receiver sends after every data
 * frame. Here the socket is corked for the whole batch, so Node flushes it with one writev.
 *
 * Plugged in through libp2p's connection-protector hook (the only place that sees the raw connection
 * before Noise; admission no longer uses it, see admission.ts). It relies on @libp2p/tcp's connection
 * keeping its socket in `socket`; any other connection is passed through untouched, and
 * test/p2p/write-coalescing.test.ts fails if an upgrade of @libp2p/tcp stops it from applying
 * (`writeCoalescingStats`).
 */
import type { Socket } from 'node:net'
import type { ConnectionProtector, MessageStream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

interface SendResult {
  sentBytes: number
  canSendMore: boolean
}

interface TcpConnection {
  socket: Socket
  sendData(data: Uint8ArrayList): SendResult
}

/** Connections seen, by outcome (process-wide): `skipped` > 0 on TCP means an upgrade broke the hook. */
export const writeCoalescingStats = { applied: 0, skipped: 0 }

function isTcpConnection(conn: unknown): conn is TcpConnection {
  const c = conn as Partial<TcpConnection>
  return typeof c.sendData === 'function' && typeof c.socket?.cork === 'function' && typeof c.socket.writableNeedDrain === 'boolean'
}

/**
 * Every buffer of the batch goes into the corked socket (the batch is what the layer above already
 * handed over; nothing is held twice), then one writev. Backpressure is kept: when the socket's buffer
 * is over its high-water mark Node has set `writableNeedDrain` and will emit 'drain', which is exactly
 * when @libp2p/tcp's stream resumes sending; `canSendMore` is never false without that promise.
 */
export function coalescedSend(socket: Socket, data: Uint8ArrayList): SendResult {
  corkUntilMicrotask(socket)
  for (const buf of data) socket.write(buf)
  return { sentBytes: data.byteLength, canSendMore: !socket.writableNeedDrain }
}

/** Sockets corked until the current synchronous run ends. */
const corked = new WeakSet<Socket>()

/**
 * Cork the socket until the microtasks queued now have run: every batch sent meanwhile leaves in the
 * same writev. A reader answers each incoming yamux data frame with a 12-byte window update, and one
 * TCP read holds several frames: one syscall for all of them instead of one each (measured: writev
 * was a tenth of a lazy peer read's CPU). No timer: the bytes leave before any I/O is polled again.
 */
function corkUntilMicrotask(socket: Socket): void {
  if (corked.has(socket)) return
  corked.add(socket)
  socket.cork()
  queueMicrotask(() => {
    corked.delete(socket)
    socket.uncork()
  })
}

export function writeCoalescing(): () => ConnectionProtector {
  return () => ({
    async protect(connection: MessageStream): Promise<MessageStream> {
      if (!isTcpConnection(connection)) {
        writeCoalescingStats.skipped++
        return connection
      }
      const socket = connection.socket
      connection.sendData = (data) => coalescedSend(socket, data)
      writeCoalescingStats.applied++
      return connection
    },
  })
}
