/**
 * One-way messages between nodes (announcements, member lists): a fresh stream per push carrying one
 * varint length-prefixed message and no answer. The receiver bounds the message by its limit before
 * reading it, and a stalled stream is cut by the shared watchdog.
 */
import type { CoarseTimer } from '../util/coarse-timer.ts'
import { MAX_VARINT_BYTES } from './constants.ts'
import type { PeerHost } from './host.ts'
import { type RawStream, WireStream } from './wire/stream.ts'

export interface PushOptions {
  signal: AbortSignal
  /** No bytes moving for this long fails the stream. */
  stallMs: number
  stallTimer: CoarseTimer
}

/** Send `message` to `peer` on `protocol`; throws if the stream cannot be opened or written. */
export async function pushMessage(host: PeerHost, peer: string, protocol: string, message: Uint8Array, o: PushOptions): Promise<void> {
  const raw = await host.openStream(peer, protocol, o.signal)
  // Budget 0: the receiver never answers on this stream.
  const wire = new WireStream(raw, { budget: 0, signal: o.signal, stallMs: o.stallMs, stallTimer: o.stallTimer })
  try {
    await wire.writeMessage(message)
    await wire.closeWrite()
    wire.finish()
  } catch (err) {
    throw wire.fail(err)
  }
}

/** Read the one message of a pushed stream, at most `maxBytes`, decoded; the stream is failed (reset) on any error. */
export async function receivePushed<T>(raw: RawStream, decode: (buf: Uint8Array) => T, maxBytes: number, what: string, o: PushOptions): Promise<T> {
  const wire = new WireStream(raw, { budget: MAX_VARINT_BYTES + maxBytes, signal: o.signal, stallMs: o.stallMs, stallTimer: o.stallTimer })
  try {
    const msg = await wire.readMessage(decode, maxBytes, what)
    await wire.closeWrite()
    wire.finish()
    return msg
  } catch (err) {
    throw wire.fail(err)
  }
}
