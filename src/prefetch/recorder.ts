/**
 * Records, while a build file is open, the order in which readers first demand its fetch units (frames
 * or raw chunks), with the time since the open: at most `maxEntries` units, one entry each however
 * often it is read. Fed by ResumedFile's read observer; prefetches are not reads and are not recorded.
 */
import type { BuildId, FileKind } from '../format/types.ts'
import type { BuildReader } from '../read/build-reader.ts'
import { type AccessTrace, TRACE_PAGE, type TraceEntry } from './trace.ts'

export class AccessRecorder {
  private readonly seen = new Set<string>()
  private readonly entries: TraceEntry[] = []
  private readonly opened = performance.now()
  private readonly maxEntries: number
  private stopped = false

  constructor(maxEntries: number) {
    this.maxEntries = maxEntries
  }

  /** Units recorded so far. */
  get count(): number {
    return this.entries.length
  }

  /** True once `maxEntries` units are recorded (or stop was called): nothing more is taken. */
  get full(): boolean {
    return this.stopped || this.entries.length >= this.maxEntries
  }

  /** One read of [offset, offset + length) starting on `reader`. */
  note(offset: number, length: number, reader: BuildReader): void {
    if (this.full) return
    const ms = performance.now() - this.opened
    try {
      reader.forEachUnit(offset, length, (key, virtualOffset) => {
        if (this.entries.length >= this.maxEntries || this.seen.has(key)) return
        this.seen.add(key)
        this.entries.push({ offset: virtualOffset - (virtualOffset % TRACE_PAGE), ms })
      })
    } catch {
      // A range the reader refuses (outside the file): the read itself reports it.
    }
  }

  /** Stop recording and return the trace (null when nothing was read). */
  finish(buildId: BuildId, kind: FileKind, size: number): AccessTrace | null {
    this.stopped = true
    if (this.entries.length === 0) return null
    return { buildId, kind, size, entries: this.entries }
  }
}
