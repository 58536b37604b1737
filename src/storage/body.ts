/**
 * Reading an object's response body into memory, shared by the S3 and GCS clients. Their SDKs time out
 * a request only until the response headers arrive; a body that then stops sending would be waited on
 * forever, so an idle timer on the body turns that into a retryable timeout.
 */
import { LimitError } from '../errors.ts'
import { StorageError } from './store.ts'

export interface BodyReadOptions {
  /** More bytes than this fail with LimitError. */
  limit: number
  /** The body may send nothing for this long before it fails with a retryable timeout. */
  idleMs: number
  /** The request in messages, e.g. `s3 get`. */
  op: string
  /** The object in messages, e.g. `s3://bucket/key`. */
  url: string
  /** Turns a stream error into the client's coded error (the idle timeout arrives already coded). */
  mapError: (err: unknown) => Error
}

/** A response body: chunks as they arrive, and a way to stop it with a reason. */
export type Body = AsyncIterable<Uint8Array> & { destroy?(e?: Error): void }

/** Collects `body`, refusing more than `limit` bytes and failing when it stalls for `idleMs`. */
export async function readBodyLimited(body: Body, opts: BodyReadOptions): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  let total = 0
  const idle = setTimeout(() => {
    body.destroy?.(new StorageError(`${opts.op} ${opts.url}: timeout: no body bytes for ${opts.idleMs} ms`, { retryable: true }))
  }, opts.idleMs)
  try {
    for await (const c of body) {
      idle.refresh()
      total += c.byteLength
      if (total > opts.limit) {
        body.destroy?.()
        throw new LimitError(`object ${opts.url}: more than the ${opts.limit} bytes expected`)
      }
      chunks.push(c)
    }
  } catch (err) {
    throw opts.mapError(err)
  } finally {
    clearTimeout(idle)
  }
  return Buffer.concat(chunks, total)
}
