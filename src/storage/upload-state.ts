/**
 * Bookkeeping shared by every backend's multipart upload: the state machine (open → completing →
 * completed, or → aborted), the parts received so far, and the part writes still in flight.
 *
 * The Go system let `close` race with in-flight part uploads and never aborted uploads
 * (orphaned parts). Here abort and complete first wait for every part write that already started, so
 * a part can never land after the cleanup that should have removed it.
 */
import { checkPartNumber, UploadStateError } from './store.ts'

type State = 'open' | 'completing' | 'completed' | 'aborted'

export interface PartInfo {
  partNumber: number
  size: number
}

export class UploadTracker {
  readonly name: string
  private state: State = 'open'
  /** partNumber → size in bytes, of parts whose write finished successfully. */
  private readonly parts = new Map<number, number>()
  private readonly inflight = new Set<Promise<unknown>>()
  private completion: Promise<void> | undefined

  constructor(name: string) {
    this.name = name
  }

  /** Runs one part write, tracked so that abort/complete wait for it. Rejects unless the upload is open. */
  async writePart(partNumber: number, size: number, write: () => Promise<void>): Promise<void> {
    checkPartNumber(partNumber)
    this.ensure('open', `upload part ${partNumber}`)
    const p = write()
    this.inflight.add(p)
    try {
      await p
      // A part that finished after abort began is removed by abort's cleanup, which waited for it.
      if (this.state !== 'aborted') this.parts.set(partNumber, size)
    } finally {
      this.inflight.delete(p)
    }
  }

  /**
   * Runs `assemble` over the parts once every in-flight part write settled. Parts must be exactly 1..n
   * (UploadStateError otherwise). A failed complete leaves the upload open: retry it, or abort it.
   */
  runComplete(assemble: (parts: PartInfo[]) => Promise<void>): Promise<void> {
    try {
      this.ensure('open', 'complete')
    } catch (err) {
      return Promise.reject(err)
    }
    this.state = 'completing'
    // Set synchronously, so an abort() issued right after complete() waits for it.
    const run = (async () => {
      let ok = false
      try {
        await this.settle()
        await assemble(this.orderedParts())
        ok = true
      } finally {
        this.state = ok ? 'completed' : 'open'
        this.completion = undefined
      }
    })()
    this.completion = run
    return run
  }

  /**
   * Enters `aborted` once every in-flight part write (and a running complete) settled. Returns false
   * after a successful complete, so abort never touches a final object; a repeated abort cleans again
   * (the first cleanup may have failed).
   */
  async beginAbort(): Promise<boolean> {
    await this.completion?.catch(() => {})
    if (this.state === 'completed') return false
    this.state = 'aborted'
    await this.settle()
    return true
  }

  private orderedParts(): PartInfo[] {
    const numbers = [...this.parts.keys()].sort((a, b) => a - b)
    const gap = numbers.findIndex((n, i) => n !== i + 1)
    if (gap !== -1) {
      throw new UploadStateError(`complete ${this.name}: expected parts 1..${numbers.length}, part ${gap + 1} is missing`)
    }
    return numbers.map((n) => ({ partNumber: n, size: this.parts.get(n)! }))
  }

  private async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight])
  }

  private ensure(want: State, what: string): void {
    if (this.state === want) return
    throw new UploadStateError(`${what} of ${JSON.stringify(this.name)}: upload is ${this.state}, expected ${want}`)
  }
}

/**
 * Runs `fn` over `items` with at most `limit` running at once. On the first error no new item starts,
 * and it rejects only after the running ones settled: nothing is still writing when the caller cleans up.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  let failed = false
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++
      try {
        out[i] = await fn(items[i], i)
      } catch (err) {
        failed = true
        throw err
      }
    }
  }
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker))
  const rejected = results.find((r) => r.status === 'rejected')
  if (rejected) throw (rejected as PromiseRejectedResult).reason
  return out
}
