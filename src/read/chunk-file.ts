/**
 * The chunk cache of one data file (one build's `memfile` or `rootfs`): a sparse local file holding
 * uncompressed bytes at their data-file offsets, plus a PresenceMap of the 4 KiB pages that hold
 * verified bytes (DESIGN §7).
 *
 * A miss fetches the whole fetch unit (frame, or aligned raw chunk) that covers the missing page.
 * Rules, each one a bug of DESIGN §9 not to repeat:
 * - One fetch per unit at a time: a reader whose page is covered by a fetch in flight waits on it.
 *   "Covered" is judged by the fetch's OWN range, never the reader's idea of the frame, so a fetch
 *   started under another frame geometry (a header switch) is joined or not on facts (the 2.5%
 *   zeroed-pages bug). After every wait the reader re-checks the PresenceMap itself.
 * - Pages are marked present only after the fetcher verified the bytes AND they are written here.
 * - A fetch runs under the file's own lifetime signal and a deadline, never a reader's: a reader that
 *   aborts stops only its own wait. Every fetch ends (success, error or deadline), so no waiter hangs;
 *   waiters are promises, so a wake-up cannot be lost.
 */
import type { FileHandle } from 'node:fs/promises'
import { mkdir, open } from 'node:fs/promises'
import { dirname } from 'node:path'
import { FormatError } from '../format/errors.ts'
import { type Logger, silentLogger } from '../obs/log.ts'
import { raceAbort, withDeadline } from './abort.ts'
import { BITMAP_FLUSH_MS, FETCH_TIMEOUT_MS, PAGE_SIZE, READ_AHEAD_BYTES, READ_AHEAD_MIN_READ, READ_FETCH_WINDOW, READ_MAX_ROUNDS } from './constants.ts'
import { CacheClosedError } from './errors.ts'
import type { VerifiedFrameFetcher } from './fetcher.ts'
import { ReadMetrics } from './metrics.ts'
import { PresenceMap } from './presence.ts'
import type { FrameRef } from './source.ts'
import { describeRef } from './verify.ts'

/** The fetch unit (frame or raw chunk) of a layer that covers a data-file offset. */
export type FramePlanner = (offset: number) => FrameRef

interface Fetch {
  readonly startU: number
  readonly endU: number
  /** The verified uncompressed bytes of [startU, endU), resolved once written and marked present. */
  readonly done: Promise<Uint8Array>
}

interface Fetched {
  readonly startU: number
  readonly plain: Uint8Array
}

export interface ChunkFileDeps {
  readonly fetcher: VerifiedFrameFetcher
  readonly metrics?: ReadMetrics
  readonly logger?: Logger
  /** Told how many bytes became present, for the cache directory's size accounting. */
  readonly onGrow?: (bytes: number) => void
}

export class ChunkFile {
  readonly dataPath: string
  readonly mapPath: string
  private readonly fh: FileHandle
  private readonly presence: PresenceMap
  private readonly deps: ChunkFileDeps
  private readonly metrics: ReadMetrics
  private readonly log: Logger
  private readonly inflight = new Map<number, Fetch>()
  private readonly life = new AbortController()
  private readonly localHits
  private flushTimer: NodeJS.Timeout | undefined
  private flushing: Promise<void> = Promise.resolve()
  /** The page after the last large read: a large read starting here is streaming (read-ahead). */
  private sequentialNext = -1

  private constructor(dataPath: string, mapPath: string, fh: FileHandle, presence: PresenceMap, deps: ChunkFileDeps) {
    this.dataPath = dataPath
    this.mapPath = mapPath
    this.fh = fh
    this.presence = presence
    this.deps = deps
    this.metrics = deps.metrics ?? new ReadMetrics()
    this.log = (deps.logger ?? silentLogger).child({ component: 'chunk-file', path: dataPath })
    this.localHits = this.metrics.hits.labels({ source: 'local' })
  }

  /** Opens (creating if needed) the sparse file and its saved presence record. */
  static async open(dataPath: string, mapPath: string, deps: ChunkFileDeps): Promise<ChunkFile> {
    await mkdir(dirname(dataPath), { recursive: true })
    const presence = await PresenceMap.load(mapPath)
    // 'a+' would force appends; 'r+' needs the file to exist, so create it first without truncating.
    await (await open(dataPath, 'a')).close()
    const fh = await open(dataPath, 'r+')
    return new ChunkFile(dataPath, mapPath, fh, presence, deps)
  }

  /** Bytes of verified data present (whole pages). */
  get bytes(): number {
    return this.presence.count * PAGE_SIZE
  }

  /** Fill `dst` with data-file bytes at `offset`, fetching what is missing through `plan`. */
  async readInto(dst: Uint8Array, offset: number, plan: FramePlanner, signal?: AbortSignal): Promise<void> {
    if (this.life.signal.aborted) throw this.life.signal.reason
    const first = Math.floor(offset / PAGE_SIZE)
    const end = Math.ceil((offset + dst.byteLength) / PAGE_SIZE)
    if (this.presence.firstMissing(first, end) === -1) {
      this.localHits.inc() // the hot path: one bitmap check, one pread
      if (this.isStreaming(first, end, dst.byteLength)) this.readAhead(end, plan)
      return readFull(this.fh, dst, offset)
    }
    const fetched = await this.fill(first, end, dst.byteLength, plan, signal)
    // Verified bytes in hand that cover the whole read are copied, not read back from the file.
    if (!copyIfCovered(dst, offset, fetched)) await readFull(this.fh, dst, offset)
  }

  /**
   * Fetch (or join fetches of) every missing page in [first, end), at most READ_FETCH_WINDOW at once
   * as a sliding window. A fetch resolving does not mean "my pages are here": the PresenceMap is
   * re-checked from `first` after the window drains, and anything still missing is fetched again.
   * Returns the verified units this read waited on.
   */
  private async fill(first: number, end: number, length: number, plan: FramePlanner, signal?: AbortSignal): Promise<Fetched[]> {
    const sequential = this.isStreaming(first, end, length)
    const fetched: Fetched[] = []
    for (let round = 0; this.presence.firstMissing(first, end) !== -1; round++) {
      if (round >= READ_MAX_ROUNDS) {
        throw new FormatError(`pages of ${this.dataPath} still missing after ${round} fetch rounds`)
      }
      // fillRound starts this read's own fetches synchronously; read-ahead queues behind them.
      const done = this.fillRound(first, end, fetched, plan, signal)
      if (sequential && round === 0) this.readAhead(end, plan)
      await done
    }
    return fetched
  }

  private async fillRound(first: number, end: number, fetched: Fetched[], plan: FramePlanner, signal?: AbortSignal): Promise<void> {
    const active = new Set<Promise<unknown>>()
    let cursor = first
    for (;;) {
      for (let p = this.presence.firstMissing(cursor, end); p !== -1 && active.size < READ_FETCH_WINDOW; ) {
        const f = this.fetchCovering(p, plan)
        const wait: Promise<unknown> = f.done.then((plain) => fetched.push({ startU: f.startU, plain })).finally(() => active.delete(wait))
        wait.catch(() => {}) // observed through Promise.race below, or by the fetch's other waiters
        active.add(wait)
        cursor = Math.ceil(f.endU / PAGE_SIZE)
        p = this.presence.firstMissing(cursor, end)
      }
      if (active.size === 0) return
      await raceAbort(Promise.race(active), signal)
    }
  }

  /** A large read starting where the last large one ended: a streaming reader (hit or miss). */
  private isStreaming(first: number, end: number, length: number): boolean {
    if (length < READ_AHEAD_MIN_READ) return false
    const sequential = first === this.sequentialNext
    this.sequentialNext = end
    return sequential
  }

  /**
   * A streaming reader gets the units after its read fetched ahead, on hits as well as misses, so
   * fetching and decoding overlap its consumption without gaps. Best effort: errors stay with the fetch.
   */
  private readAhead(end: number, plan: FramePlanner): void {
    let page = end
    const stop = end + READ_AHEAD_BYTES / PAGE_SIZE
    try {
      while (page < stop && this.inflight.size < 2 * READ_FETCH_WINDOW) {
        if (this.presence.has(page)) page++
        else page = Math.ceil(this.fetchCovering(page, plan, false).endU / PAGE_SIZE)
      }
    } catch {
      // Past the layer's mapped data or its frame table: nothing more to read ahead.
    }
  }

  /** The fetch in flight whose own range covers `page`, or a new one for the unit `plan` gives. */
  private fetchCovering(page: number, plan: FramePlanner, reader = true): Fetch {
    const pos = page * PAGE_SIZE
    for (const f of this.inflight.values()) {
      if (f.startU <= pos && pos < f.endU) {
        if (reader) this.metrics.dedupJoins.inc()
        return f
      }
    }
    const ref = plan(pos)
    if (ref.startU % PAGE_SIZE !== 0 || pos < ref.startU || pos >= ref.startU + ref.sizeU) {
      throw new FormatError(`${describeRef(ref)} does not cover page offset ${pos} on a ${PAGE_SIZE}-byte boundary`)
    }
    return this.start(ref)
  }

  private start(ref: FrameRef): Fetch {
    const done = this.run(ref).finally(() => {
      if (this.inflight.get(ref.startU) === entry) this.inflight.delete(ref.startU)
    })
    done.catch(() => {}) // waiters that gave up no longer observe it; the error is theirs, not unhandled
    const entry: Fetch = { startU: ref.startU, endU: ref.startU + ref.sizeU, done }
    this.inflight.set(ref.startU, entry)
    this.metrics.fetchesStarted.inc()
    return entry
  }

  private async run(ref: FrameRef): Promise<Uint8Array> {
    const plain = await this.deps.fetcher.fetch(ref, withDeadline(this.life.signal, FETCH_TIMEOUT_MS))
    this.life.signal.throwIfAborted()
    await writeFull(this.fh, plain, ref.startU)
    // Only now, verified and written, do the pages become present (DESIGN §9).
    const added = this.presence.setRange(ref.startU / PAGE_SIZE, Math.ceil((ref.startU + ref.sizeU) / PAGE_SIZE))
    if (added > 0) this.deps.onGrow?.(added * PAGE_SIZE)
    this.scheduleFlush()
    return plain
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== undefined || this.life.signal.aborted) return
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined
      this.flush().catch((err: unknown) => this.log.warn({ err }, 'could not save chunk presence map'))
    }, BITMAP_FLUSH_MS)
    this.flushTimer.unref()
  }

  /** Make the data durable, then record it: a crash never leaves pages marked whose bytes were lost. */
  flush(): Promise<void> {
    // One save at a time, in order; a failed save must not wedge the ones after it.
    this.flushing = this.flushing.catch(() => {}).then(async () => {
      if (!this.presence.dirty) return
      const snap = this.presence.snapshot()
      await this.fh.datasync()
      await this.presence.save(this.mapPath, snap)
    })
    return this.flushing
  }

  /** Stop fetches (nobody waits on them once the cache releases the file), save the record, close. */
  async close(): Promise<void> {
    if (!this.life.signal.aborted) this.life.abort(new CacheClosedError(`chunk file ${this.dataPath} closed`))
    await Promise.allSettled([...this.inflight.values()].map((f) => f.done))
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    try {
      await this.flush()
    } finally {
      await this.fh.close()
    }
  }
}

/** Copy [offset, offset + dst.length) from fetched units if they cover all of it, in one pass. */
function copyIfCovered(dst: Uint8Array, offset: number, fetched: Fetched[]): boolean {
  fetched.sort((x, y) => x.startU - y.startU)
  const end = offset + dst.byteLength
  let pos = offset
  for (const f of fetched) {
    if (f.startU > pos) return false
    const to = Math.min(end, f.startU + f.plain.byteLength)
    if (to > pos) {
      dst.set(f.plain.subarray(pos - f.startU, to - f.startU), pos - offset)
      pos = to
    }
  }
  return pos >= end
}

async function readFull(fh: FileHandle, dst: Uint8Array, position: number): Promise<void> {
  let done = 0
  while (done < dst.byteLength) {
    const { bytesRead } = await fh.read(dst, done, dst.byteLength - done, position + done)
    if (bytesRead === 0) throw new FormatError(`chunk cache file ended at ${position + done}, pages marked present`)
    done += bytesRead
  }
}

async function writeFull(fh: FileHandle, src: Uint8Array, position: number): Promise<void> {
  let done = 0
  while (done < src.byteLength) {
    const { bytesWritten } = await fh.write(src, done, src.byteLength - done, position + done)
    done += bytesWritten
  }
}
