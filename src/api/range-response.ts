/**
 * Writing one Range answer: read a chunk into a buffer leased from the node's response budget, send
 * it, read the next one while it goes out, and give each buffer back once the socket took all of it.
 *
 * - Memory: a request holds at most two chunks, and only one when the budget is tight; all requests
 *   together hold at most the budget (src/api/response-budget.ts).
 * - A client that takes none of the bytes sent to it for `sendTimeoutMs` is cut, so a client that
 *   never reads does not keep its buffers (and its share of the budget) forever. Progress is seen per
 *   slice of a chunk, so a slow but steady reader is never cut.
 * - A failure before the status line went out is thrown (the caller answers a JSON error); a failure
 *   after it destroys the connection, so the client sees an error and never a clean end of a cut
 *   body, and is logged at warn with the build, file, range and cause.
 * - The client going away (or being cut) aborts `abort`: reads and budget waits end at once.
 */
import type { ServerResponse } from 'node:http'
import { SnapswarmError } from '../errors.ts'
import type { Logger } from '../obs/log.ts'
import type { Counter } from '../obs/metrics.ts'
import { raceAbort } from '../util/abort.ts'
import type { FileHandleLike } from '../switchover/open-files.ts'
import type { Lease, ResponseBudget } from './response-budget.ts'

/** A chunk goes to the socket in slices this big: each one the socket takes counts as the client's progress. */
const SLICE = 256 * 1024
/** Slices handed to the socket at once: one being written, one ready behind it. */
const MAX_OUTSTANDING = 2

/** The client took none of the bytes sent to it for too long; its connection was closed. */
export class SendTimeoutError extends SnapswarmError {
  constructor(ms: number, sent: number) {
    super('ERR_SEND_TIMEOUT', `the client took none of the bytes sent to it for ${ms} ms (http.sendTimeoutMs) after ${sent} bytes; connection closed`)
  }
}

export interface RangeResponseDeps {
  readonly budget: ResponseBudget
  readonly sendTimeoutMs: number
  readonly log: Logger
  /** Responses ended early by the server, by reason (`send_timeout`, `read_failed`). */
  readonly cut?: Counter
}

export interface RangeAnswer {
  readonly res: ServerResponse
  readonly file: Pick<FileHandleLike, 'size' | 'readInto'>
  readonly start: number
  readonly end: number
  /** 206 with Content-Range (a Range request), else 200. */
  readonly partial: boolean
  /** Aborted when the client goes away; aborted here when the client is cut. */
  readonly abort: AbortController
  /** What the log line names: build id and file. */
  readonly what: { readonly buildId: string; readonly kind: string }
}

export async function sendRange(deps: RangeResponseDeps, a: RangeAnswer): Promise<void> {
  const { res, start, end, abort } = a
  const signal = abort.signal
  const writer = new ChunkWriter(res, deps.sendTimeoutMs, (err) => {
    deps.cut?.inc({ reason: 'send_timeout' })
    deps.log.info({ ...a.what, range: `${start}-${end}`, err }, 'stalled client cut')
    abort.abort(err)
    res.destroy(err)
  }, (err) => abort.abort(err))
  let pos = start
  try {
    const inflight: Promise<void>[] = []
    while (pos <= end) {
      const n = Math.min(end - pos + 1, deps.budget.chunkBytes)
      // Read the next chunk while the last one goes out, unless the budget is tight: then one at a time.
      if (inflight.length === 2 || (inflight.length === 1 && !deps.budget.fitsNow(n))) await raceAbort(inflight.shift() as Promise<void>, signal)
      const lease = await deps.budget.acquire(n, signal, !res.headersSent)
      try {
        await a.file.readInto(lease.buf, pos, signal)
      } catch (err) {
        lease.release()
        throw err
      }
      if (!res.headersSent) writeHead(res, a)
      inflight.push(writer.send(lease))
      pos += n
    }
    await raceAbort(Promise.all(inflight), signal)
    if (!res.headersSent) writeHead(res, a) // an empty file: no chunk was read
    res.end()
  } catch (err) {
    if (!res.headersSent && !signal.aborted) throw err
    if (signal.aborted) {
      // The client went away or was cut: nothing more to tell it; its reads and waits ended with the signal.
      deps.log.debug({ ...a.what, range: `${start}-${end}`, read: pos - start, err }, 'range answer ended early: client gone')
      return
    }
    deps.cut?.inc({ reason: 'read_failed' })
    deps.log.warn({ ...a.what, range: `${start}-${end}`, read: pos - start, err }, 'read failed mid-stream: response aborted')
    abort.abort(err)
    res.destroy(err as Error)
  } finally {
    writer.dispose()
  }
}

function writeHead(res: ServerResponse, a: RangeAnswer): void {
  res.writeHead(a.partial ? 206 : 200, {
    'content-type': 'application/octet-stream',
    'content-length': String(a.end - a.start + 1),
    ...(a.partial ? { 'content-range': `bytes ${a.start}-${a.end}/${a.file.size}` } : {}),
  })
}

/**
 * Sends leased chunks in order, slice by slice, and gives each lease back once every slice of it was
 * taken by the socket or the connection closed (then nothing reads the buffer any more). At most
 * MAX_OUTSTANDING slices are handed to the socket at a time: a stream that gets many writes at once
 * flushes them as one batch with one completion, which would hide a slow reader's progress. Cuts the
 * client through `onStall` when bytes wait to be sent and none was taken for `timeoutMs`.
 */
class ChunkWriter {
  private readonly res: ServerResponse
  private readonly timer: NodeJS.Timeout
  private readonly onBroken: (err: Error) => void
  /** Slices not handed to the socket yet, in answer order; `taken` runs once the socket took the slice. */
  private readonly queue: { slice: Buffer; taken?: () => void }[] = []
  private outstanding = 0
  private sent = 0

  constructor(res: ServerResponse, timeoutMs: number, onStall: (err: Error) => void, onBroken: (err: Error) => void) {
    this.res = res
    this.onBroken = onBroken
    this.timer = setTimeout(() => {
      if (this.outstanding > 0 && !res.destroyed) onStall(new SendTimeoutError(timeoutMs, this.sent))
    }, timeoutMs)
    this.timer.unref()
  }

  send(lease: Lease): Promise<void> {
    const { buf } = lease
    if (this.res.destroyed) {
      lease.release() // the connection is gone: nothing will read this buffer
      return Promise.resolve()
    }
    return new Promise<void>((resolve) => {
      let settled = false
      const done = (): void => {
        if (settled) return
        settled = true
        this.res.off('close', done)
        lease.release()
        resolve()
      }
      // The last slice's write callback ends it; 'close' does when the connection goes first.
      this.res.once('close', done)
      for (let off = 0; off < buf.byteLength; off += SLICE) {
        const last = off + SLICE >= buf.byteLength
        this.queue.push({ slice: buf.subarray(off, off + SLICE), taken: last ? done : undefined })
      }
      this.pump()
    })
  }

  private pump(): void {
    while (this.outstanding < MAX_OUTSTANDING && this.queue.length > 0) {
      const item = this.queue.shift() as { slice: Buffer; taken?: () => void }
      if (this.outstanding++ === 0) this.timer.refresh() // the clock runs only while the client owes us progress
      this.res.write(item.slice, (err) => {
        this.outstanding--
        if (err) {
          // The connection is gone: nothing more goes out; 'close' gives the leases back.
          this.queue.length = 0
          return this.onBroken(err)
        }
        this.sent += item.slice.byteLength
        this.timer.refresh()
        item.taken?.()
        this.pump()
      })
    }
  }

  dispose(): void {
    clearTimeout(this.timer)
  }
}
