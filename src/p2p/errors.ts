/**
 * Errors of the peer layer: named classes with a stable `code`. Ordinary answers
 * (NOT_AVAILABLE, BUSY, USE_STORAGE...) are statuses, not errors; these are for broken exchanges.
 * Over-limit lengths raise `LimitError` from src/errors.ts, before any allocation.
 */
import { SnapswarmError } from '../errors.ts'

/** The remote broke the protocol: truncated or unparsable message, more bytes than declared, bad status. */
export class PeerProtocolError extends SnapswarmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PEER_PROTOCOL', message, options)
  }
}

/** No bytes from the peer for longer than the stall timeout: treat the peer as dead for this request. */
export class PeerStallError extends SnapswarmError {
  readonly stallMs: number
  constructor(stallMs: number) {
    super('ERR_PEER_STALL', `no bytes from peer for ${stallMs} ms`)
    this.stallMs = stallMs
  }
}

/** The stream failed underneath us: reset by the remote, connection lost, dial refused. */
export class PeerStreamError extends SnapswarmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PEER_STREAM', message, options)
  }
}

/** Cluster admission misconfigured: unreadable key file, bad swarm key, empty allow-list. */
export class AdmissionConfigError extends SnapswarmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_ADMISSION_CONFIG', message, options)
  }
}
