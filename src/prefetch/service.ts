/**
 * Record and prefetch, per open build file (one session each, attached by OpenFiles):
 *
 * - On open the session starts recording the units readers demand (AccessRecorder) and looks for a
 *   trace (TraceStore: held here, the origin's for a pending build, storage's). Found: recording stops
 *   (the first complete trace wins anyway) and the trace's units are fetched in its order in the
 *   background, through the node's normal sources and verification (ResumedFile.prefetchAt), each
 *   fetch taking a slot of the node's PrefetchGate (strictly below demand), until the trace ends, the
 *   file closes or the budget of bytes fetched is spent.
 * - Not found: the recording ends after `recordWindowMs`, when `maxEntries` units are recorded, or
 *   when the file closes, whichever comes first, and is saved (TraceStore.save).
 */
import { resolve } from '../format/mapping.ts'
import type { Header } from '../format/header.ts'
import { type BuildId, type FileKind, NIL_BUILD_ID } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import type { BuildReader } from '../read/build-reader.ts'
import type { PrefetchGate } from './gate.ts'
import { AccessRecorder } from './recorder.ts'
import type { AccessTrace } from './trace.ts'
import type { TraceStore } from './traces.ts'

/**
 * What prefetching needs of an open build file (a switchover ResumedFile in the node): its current
 * header, the reads it serves (to record them) and a way to fetch one unit ahead. Declared here, not
 * imported, because open files sit above this layer.
 */
export interface PrefetchFile {
  readonly size: number
  readonly header: Header
  readonly pending: boolean
  observe(observer: ((offset: number, length: number, reader: BuildReader) => void) | null): void
  prefetchAt(offset: number): Promise<number>
}

export interface PrefetchSettings {
  /** Fetch ahead from a trace when one exists. */
  readonly enabled: boolean
  /** Record traces of files that have none. */
  readonly record: boolean
  /** Bytes (uncompressed) one file prefetches at most. */
  readonly budgetBytes: number
  readonly recordWindowMs: number
  readonly maxEntries: number
}

/** Ancestor layers whose traces a child without one of its own is looked up in, at most. */
const MAX_ANCESTOR_LOOKUPS = 2

export interface PrefetchServiceDeps {
  readonly settings: PrefetchSettings
  readonly traces: TraceStore
  readonly gate: PrefetchGate
  readonly log: Logger
}

export interface PrefetchSession {
  /** Stop prefetching, finish (and save) the recording. Idempotent. */
  close(): Promise<void>
}

export class PrefetchService {
  private readonly deps: PrefetchServiceDeps
  private readonly saving = new Set<Promise<void>>()

  constructor(deps: PrefetchServiceDeps) {
    this.deps = deps
  }

  attach(buildId: BuildId, kind: FileKind, file: PrefetchFile): PrefetchSession {
    const { settings } = this.deps
    if (!settings.enabled && !settings.record) return { close: async () => {} }
    return new Session(this.deps, buildId, kind, file, (p) => this.track(p))
  }

  /** Wait for the recordings being saved (node stop). */
  async idle(): Promise<void> {
    while (this.saving.size > 0) await Promise.allSettled([...this.saving])
  }

  private track(p: Promise<void>): void {
    this.saving.add(p)
    void p.finally(() => this.saving.delete(p))
  }
}

class Session implements PrefetchSession {
  private readonly deps: PrefetchServiceDeps
  private readonly buildId: BuildId
  private readonly kind: FileKind
  private readonly file: PrefetchFile
  private readonly ctl = new AbortController()
  private readonly track: (p: Promise<void>) => void
  private recorder: AccessRecorder | null = null
  private window: NodeJS.Timeout | undefined

  constructor(deps: PrefetchServiceDeps, buildId: BuildId, kind: FileKind, file: PrefetchFile, track: (p: Promise<void>) => void) {
    this.deps = deps
    this.buildId = buildId
    this.kind = kind
    this.file = file
    this.track = track
    if (deps.settings.record) this.startRecording()
    void this.lookup().catch((err: unknown) => deps.log.warn({ err, buildId, kind }, 'prefetch stopped'))
  }

  /**
   * Stops at once: no prefetch starts after this, and the lookup is abandoned. A prefetch already
   * fetching is not waited for: it ends with its fetch (the chunk cache bounds and, closing, aborts it).
   */
  async close(): Promise<void> {
    if (this.ctl.signal.aborted) return
    this.ctl.abort(new Error('build file closed'))
    this.finishRecording()
  }

  private startRecording(): void {
    const rec = new AccessRecorder(this.deps.settings.maxEntries)
    this.recorder = rec
    this.file.observe((offset, length, reader) => {
      rec.note(offset, length, reader)
      if (rec.full) this.finishRecording()
    })
    this.window = setTimeout(() => this.finishRecording(), this.deps.settings.recordWindowMs)
    this.window.unref()
  }

  /** Stop recording; save what was recorded unless `discard`. */
  private finishRecording(discard = false): void {
    const rec = this.recorder
    if (!rec) return
    this.recorder = null
    clearTimeout(this.window)
    this.file.observe(null)
    const trace = rec.finish(this.buildId, this.kind, this.file.size)
    if (!trace || discard) return
    this.track(this.deps.traces.save(trace, !this.file.pending))
  }

  private async lookup(): Promise<void> {
    const { traces, settings, log } = this.deps
    const trace = await traces.find(this.buildId, this.kind, this.file.size, this.file.pending, this.ctl.signal)
    if (this.ctl.signal.aborted) return
    if (trace) {
      // A trace exists: the first one wins, so this file's recording would never be stored.
      this.finishRecording(true)
    }
    // Without one, a child build uses an ancestor's trace for the ranges it did not change (and records its own).
    const use = trace ?? (settings.enabled ? await this.inherited() : null)
    if (!use || !settings.enabled || this.ctl.signal.aborted) return
    log.debug({ buildId: this.buildId, kind: this.kind, units: use.entries.length, from: use.buildId }, 'prefetching from an access trace')
    await this.prefetch(use)
  }

  /**
   * The trace of an ancestor layer (the ones mapping the most bytes first), cut to the entries this
   * file still reads from an ancestor: offsets inside the file that its own layer does not cover.
   */
  private async inherited(): Promise<AccessTrace | null> {
    const header = this.file.header
    const bytes = new Map<BuildId, number>()
    for (const m of header.mappings) {
      if (m.buildId !== this.buildId && m.buildId !== NIL_BUILD_ID) bytes.set(m.buildId, (bytes.get(m.buildId) ?? 0) + m.length)
    }
    const ancestors = [...bytes.keys()].sort((a, b) => bytes.get(b)! - bytes.get(a)!).slice(0, MAX_ANCESTOR_LOOKUPS)
    for (const id of ancestors) {
      const t = await this.deps.traces.find(id, this.kind, undefined, false, this.ctl.signal)
      if (this.ctl.signal.aborted) return null
      if (!t) continue
      const entries = t.entries.filter((e) => {
        const layer = e.offset < header.size ? resolve(header, e.offset).buildId : NIL_BUILD_ID
        return layer !== this.buildId && layer !== NIL_BUILD_ID
      })
      return entries.length > 0 ? { ...t, entries } : null
    }
    return null
  }

  /** The trace's units in order, `gate.concurrency` at a time at most, each holding a gate slot. */
  private async prefetch(trace: AccessTrace): Promise<void> {
    const { gate, settings, log } = this.deps
    let next = 0
    let spent = 0
    const worker = async (): Promise<void> => {
      while (next < trace.entries.length && spent < settings.budgetBytes && !this.ctl.signal.aborted) {
        const entry = trace.entries[next++]
        let release: () => void
        try {
          release = await gate.acquire(this.ctl.signal)
        } catch {
          return // the file closed
        }
        try {
          spent += await this.file.prefetchAt(entry.offset)
        } catch (err) {
          log.debug({ err, buildId: this.buildId, kind: this.kind, offset: entry.offset }, 'prefetch of a unit failed; a read will fetch it')
        } finally {
          release()
        }
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, gate.concurrency) }, worker))
  }
}
