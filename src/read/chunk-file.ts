/**
 * The chunk cache of one data file (one build's `memfile` or `rootfs`): a sparse local file holding
 * uncompressed bytes at their data-file offsets, plus a PresenceMap of the 4 KiB pages that hold
 * verified bytes.
 *
 * A miss fetches the whole fetch unit (frame, or aligned raw chunk) that covers the missing page.
 * Rules, each one a bug of the Go reader not to repeat:
 * - One fetch per unit at a time: a reader whose page is covered by a fetch in flight waits on it.
 *   "Covered" is judged by the fetch's OWN range, never the reader's idea of the frame, so a fetch
 *   started under another frame geometry (a header switch) is joined or not on facts (the 2.5%
 *   zeroed-pages bug). After every wait the reader re-checks the PresenceMap itself.
 * - Pages are marked present only after the fetcher verified the bytes AND they are written here.
 *   Waiters do not wait for the write: they are released with the verified buffer as soon as it is
 *   verified and copy from it, never from the file; the fetch stays in flight (joinable, with its
 *   buffer) until the write completes and the pages are marked, so nobody reads them from the file
 *   before then.
 * - A fetch runs under the file's own lifetime signal and a deadline, never a reader's: a reader that
 *   aborts stops only its own wait. Every fetch ends (success, error or deadline), so no waiter hangs;
 *   waiters are promises, so a wake-up cannot be lost.
 * - Bytes on disk are not trusted across an open: each page's CRC is recorded from the verified buffer
 *   when it is written, and a page loaded as present is checked against it the first time it is read
 *   after the open (then never again while open: the hot path tests one in-memory bitmap). A page
 *   that does not match, or that the file no longer holds (it was cut short: found at open, or by a
 *   short read later), is dropped from the record and refetched through the normal sources.
 */
import type { FileHandle } from 'node:fs/promises'
import { constants, mkdir, open } from 'node:fs/promises'
import { dirname } from 'node:path'
import { FormatError } from '../errors.ts'
import { type Logger, silentLogger } from '../obs/log.ts'
import { raceAbort, withDeadline } from '../util/abort.ts'
import { readUpTo, writeFully } from '../util/file-io.ts'
import { BITMAP_FLUSH_MS, FETCH_TIMEOUT_MS, PAGE_SIZE, READ_AHEAD_BYTES, READ_AHEAD_MIN_READ, READ_FETCH_WINDOW, READ_MAX_ROUNDS } from './constants.ts'
import { CacheClosedError } from './errors.ts'
import type { VerifiedFrameFetcher } from './fetcher.ts'
import { ReadMetrics } from './metrics.ts'
import { PresenceMap, pageCrc, pageCrcs } from './presence.ts'
import type { FrameRef } from './source.ts'
import { describeRef } from './verify.ts'

/** Pages checked against their CRCs per read of the file (1 MiB): bounds the buffer of a first read after an open. */
const CHECK_BATCH_PAGES = 256

/** The fetch unit (frame or raw chunk) of a layer that covers a data-file offset. */
export type FramePlanner = (offset: number) => FrameRef

interface Fetch {
  readonly startU: number
  readonly endU: number
  /** The verified uncompressed bytes of [startU, endU), resolved as soon as verified (maybe not yet written). */
  readonly verified: Promise<Uint8Array>
  /** Ends (never rejects) once the bytes are written and marked present, or the fetch or write failed. */
  readonly settled: Promise<void>
}

interface Fetched {
  readonly startU: number
  readonly plain: Uint8Array
}

export interface ChunkFileDeps {
  readonly fetcher: VerifiedFrameFetcher
  readonly metrics?: ReadMetrics
  readonly logger?: Logger
  /** Told how many bytes became present (negative: dropped), for the cache directory's size accounting. */
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
  /** The last write queued: frames are written one at a time. */
  private writing: Promise<void> = Promise.resolve()
  /** The page after the last large read: a large read starting here is streaming (read-ahead). */
  private sequentialNext = -1
  /** Units (by startU) the prefetcher fetched that no demand read has used yet. */
  private readonly prefetched = new Set<number>()
  /**
   * Verified bytes of units read ahead for a streaming reader (by startU, oldest first), kept until its
   * next reads copy them: otherwise those reads would read back the file the bytes were just written
   * to. At most READ_AHEAD_BYTES; dropped once read through, when a large read is not sequential, and
   * at close.
   */
  private readonly ahead = new Map<number, Uint8Array>()
  private aheadBytes = 0

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
    // On the first read of a build: as few filesystem round trips as can be, the record's load
    // beside the data file's open (each is a trip through the libuv pool, slow on a busy machine).
    await mkdir(dirname(dataPath), { recursive: true })
    const [loaded, opened] = await Promise.allSettled([PresenceMap.load(mapPath), openReadWrite(dataPath)])
    if (loaded.status === 'rejected') {
      if (opened.status === 'fulfilled') await opened.value.close()
      throw loaded.reason
    }
    if (opened.status === 'rejected') throw opened.reason
    const [presence, fh] = [loaded.value, opened.value]
    const file = new ChunkFile(dataPath, mapPath, fh, presence, deps)
    try {
      // An empty record has no pages the file could have lost.
      if (presence.count > 0) await file.forgetLostTail(false)
    } catch (err) {
      await fh.close()
      throw err
    }
    return file
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
    if (this.prefetched.size > 0) this.notePrefetchUse(offset, dst.byteLength, plan)
    if (this.presence.allChecked(first, end)) {
      this.localHits.inc() // the hot path: one bitmap check, one pread (or a copy of bytes read ahead)
      if (this.isStreaming(first, end, dst.byteLength)) this.readAhead(end, plan)
      if (this.ahead.size > 0 && this.copyAhead(dst, offset)) return
      if (await readFull(this.fh, dst, offset)) return
      await this.forgetLostTail(true) // the file was cut short under us: refetch what it lost
    }
    return this.readSlow(dst, offset, first, end, plan, signal)
  }

  /** A read that needs pages fetched, or checked against their CRC first (the first read after an open). */
  private async readSlow(dst: Uint8Array, offset: number, first: number, end: number, plan: FramePlanner, signal?: AbortSignal, retried = false): Promise<void> {
    if (this.presence.firstMissing(first, end) === -1 && offset % PAGE_SIZE === 0 && dst.byteLength % PAGE_SIZE === 0) {
      // Every page is here but not checked since the open: read them once, in place, and check them.
      if (await this.readChecking(dst, first)) {
        this.localHits.inc()
        return
      }
    } else {
      await this.checkPages(first, end)
    }
    // Now every page of the range is checked or missing; missing ones are fetched.
    const fetched = await this.fill(first, end, dst.byteLength, plan, signal)
    // Verified bytes in hand are copied (they may not be written yet); only pages present come from the file.
    if (await assemble(this.fh, dst, offset, fetched)) return
    if (retried) throw new FormatError(`chunk cache file ${this.dataPath} is shorter than its pages marked present, again after a refetch`)
    await this.forgetLostTail(true)
    return this.readSlow(dst, offset, first, end, plan, signal, true)
  }

  /** Read whole present pages from `first` into `dst` and check each unchecked one; false if any was dropped. */
  private async readChecking(dst: Uint8Array, first: number): Promise<boolean> {
    await readPadded(this.fh, dst, first * PAGE_SIZE)
    return this.checkRead(dst, first)
  }

  /** Check every present, unchecked page of [first, end) against its CRC (reads at most CHECK_BATCH at once). */
  private async checkPages(first: number, end: number): Promise<void> {
    const unchecked = (p: number) => this.presence.has(p) && !this.presence.isChecked(p)
    for (let p = first; p < end; ) {
      if (!unchecked(p)) {
        p++
        continue
      }
      let q = p + 1
      while (q < end && q - p < CHECK_BATCH_PAGES && unchecked(q)) q++
      const buf = Buffer.allocUnsafe((q - p) * PAGE_SIZE)
      await readPadded(this.fh, buf, p * PAGE_SIZE)
      this.checkRead(buf, p)
      p = q
    }
  }

  /**
   * Compare whole pages read from the file (from page `first`) with their recorded CRCs: a match is
   * marked checked, a mismatch dropped. Pages that changed state while the read ran (written by a
   * fetch, or dropped by another reader) are left alone. False if any page was dropped.
   */
  private checkRead(buf: Uint8Array, first: number): boolean {
    const bad: number[] = []
    for (let i = 0; i * PAGE_SIZE < buf.byteLength; i++) {
      const page = first + i
      if (!this.presence.has(page) || this.presence.isChecked(page)) continue
      if (pageCrc(buf.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)) === this.presence.crcOf(page)) this.presence.markChecked(page)
      else bad.push(page)
    }
    for (const page of bad) this.forget(page, page + 1)
    if (bad.length > 0) {
      this.metrics.cacheCorruptPages.inc({ reason: 'mismatch' }, bad.length)
      this.log.warn({ pages: bad.length, firstOffset: bad[0] * PAGE_SIZE }, 'chunk cache pages did not match their recorded CRC; dropped, refetching')
    }
    return bad.length === 0
  }

  /**
   * The data file is shorter than the pages the record holds (cut while the node was stopped, or
   * under us): forget the pages it no longer has. At open, pages wholly past its end; after a short
   * read, also the page the end falls in (a read went past it, so that page lost bytes too).
   */
  private async forgetLostTail(shortRead: boolean): Promise<void> {
    const size = (await this.fh.stat()).size
    const from = shortRead ? Math.floor(size / PAGE_SIZE) : Math.ceil(size / PAGE_SIZE)
    const n = this.forget(from, Infinity)
    if (n === 0) return
    this.metrics.cacheCorruptPages.inc({ reason: 'truncated' }, n)
    this.log.warn({ size, pagesLost: n }, 'chunk cache data file is shorter than its record; lost pages dropped, refetching')
  }

  /** Drop pages from the record (and the cache's size), and save that soon. Returns pages dropped. */
  private forget(first: number, end: number): number {
    const n = end === Infinity ? this.presence.dropFrom(first) : this.presence.drop(first, end)
    if (n > 0) {
      this.deps.onGrow?.(-n * PAGE_SIZE)
      this.scheduleFlush()
    }
    return n
  }

  /**
   * Fetch (or join fetches of) every missing page in [first, end), at most READ_FETCH_WINDOW at once
   * as a sliding window. A fetch resolving does not mean "my pages are here": after the window drains,
   * every page from `first` is re-checked (present, or inside a verified unit this read holds, judged
   * by that unit's own range), and anything still missing is fetched again.
   * Returns the verified units this read waited on.
   */
  private async fill(first: number, end: number, length: number, plan: FramePlanner, signal?: AbortSignal): Promise<Fetched[]> {
    const sequential = this.isStreaming(first, end, length)
    const fetched: Fetched[] = []
    for (let round = 0; this.firstNeeded(first, end, fetched) !== -1; round++) {
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
      for (let p = this.firstNeeded(cursor, end, fetched); p !== -1 && active.size < READ_FETCH_WINDOW; ) {
        const f = this.fetchCovering(p, plan)
        const wait: Promise<unknown> = f.verified.then((plain) => fetched.push({ startU: f.startU, plain })).finally(() => active.delete(wait))
        wait.catch(() => {}) // observed through Promise.race below, or by the fetch's other waiters
        active.add(wait)
        cursor = Math.ceil(f.endU / PAGE_SIZE)
        p = this.firstNeeded(cursor, end, fetched)
      }
      if (active.size === 0) return
      await raceAbort(Promise.race(active), signal)
    }
  }

  /** The first page in [from, end) neither present nor inside a verified unit in `fetched`, or -1. */
  private firstNeeded(from: number, end: number, fetched: readonly Fetched[]): number {
    for (let p = from; ; ) {
      p = this.presence.firstMissing(p, end)
      if (p === -1) return -1
      const pos = p * PAGE_SIZE
      const f = fetched.find((u) => u.startU <= pos && pos < u.startU + u.plain.byteLength)
      if (!f) return p
      p = Math.ceil((f.startU + f.plain.byteLength) / PAGE_SIZE)
      if (p >= end) return -1
    }
  }

  /** A large read starting where the last large one ended: a streaming reader (hit or miss). */
  private isStreaming(first: number, end: number, length: number): boolean {
    if (length < READ_AHEAD_MIN_READ) return false
    const sequential = first === this.sequentialNext
    this.sequentialNext = end
    if (!sequential) this.dropAhead()
    return sequential
  }

  /** Fill `dst` from units kept after read-ahead, if they cover all of it; units read through are dropped. */
  private copyAhead(dst: Uint8Array, offset: number): boolean {
    const end = offset + dst.byteLength
    const done: number[] = []
    for (let pos = offset; pos < end; ) {
      let unit: [number, Uint8Array] | undefined
      for (const [startU, plain] of this.ahead) if (startU <= pos && pos < startU + plain.byteLength) unit = [startU, plain]
      if (!unit) return false // dst may hold some copied bytes: the caller's fallback rewrites all of it
      const [startU, plain] = unit
      const to = Math.min(end, startU + plain.byteLength)
      dst.set(plain.subarray(pos - startU, to - startU), pos - offset)
      if (to === startU + plain.byteLength) done.push(startU)
      pos = to
    }
    for (const startU of done) this.dropAhead(startU)
    return true
  }

  /** Keep a read-ahead unit's verified bytes for the streaming reader's next reads (bounded, oldest out). */
  private keepAhead(f: Fetch): void {
    f.verified.then(
      (plain) => {
        if (this.life.signal.aborted || this.ahead.has(f.startU) || plain.byteLength > READ_AHEAD_BYTES) return
        this.ahead.set(f.startU, plain)
        this.aheadBytes += plain.byteLength
        while (this.aheadBytes > READ_AHEAD_BYTES) this.dropAhead(this.ahead.keys().next().value!)
      },
      () => {}, // a failed fetch is its waiters' error
    )
  }

  /** Forget one kept unit, or all of them. */
  private dropAhead(startU?: number): void {
    if (startU === undefined) {
      this.ahead.clear()
      this.aheadBytes = 0
      return
    }
    const plain = this.ahead.get(startU)
    if (!plain) return
    this.ahead.delete(startU)
    this.aheadBytes -= plain.byteLength
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
        else {
          const f = this.fetchCovering(page, plan, false)
          this.keepAhead(f)
          page = Math.ceil(f.endU / PAGE_SIZE)
        }
      }
    } catch {
      // Past the layer's mapped data or its frame table: nothing more to read ahead.
    }
  }

  /**
   * Background prefetch of the unit covering data-file offset `offset`: nothing when its first page is
   * here or a fetch covering it runs (waited for, so the caller's slot stays taken until it ends),
   * else a fetch at prefetch priority, waited for until written. Returns the bytes it fetched (0 when
   * it fetched nothing). A failed fetch is not thrown: a demand read of the unit fetches it again.
   */
  async prefetch(offset: number, plan: FramePlanner): Promise<number> {
    if (this.life.signal.aborted) return 0
    const page = Math.floor(offset / PAGE_SIZE)
    if (this.presence.has(page)) return 0
    const running = this.findInflight(page * PAGE_SIZE)
    if (running) {
      await running.settled
      return 0
    }
    const ref = this.checkedPlan(page * PAGE_SIZE, plan)
    const f = this.start(ref, true)
    this.prefetched.add(ref.startU)
    await f.settled
    if (!this.presence.has(page)) {
      this.prefetched.delete(ref.startU)
      return 0
    }
    this.metrics.prefetchFrames.inc()
    return ref.sizeU
  }

  /** A demand read over prefetched units: each one counts as a prefetch hit, once. */
  private notePrefetchUse(offset: number, length: number, plan: FramePlanner): void {
    for (let pos = offset - (offset % PAGE_SIZE); pos < offset + length; ) {
      let ref: FrameRef
      try {
        ref = plan(pos)
      } catch {
        return // past the layer's table: the read itself reports it
      }
      if (this.prefetched.delete(ref.startU)) this.metrics.prefetchHits.inc()
      pos = ref.startU + ref.sizeU
    }
  }

  private findInflight(pos: number): Fetch | undefined {
    for (const f of this.inflight.values()) if (f.startU <= pos && pos < f.endU) return f
    return undefined
  }

  private checkedPlan(pos: number, plan: FramePlanner): FrameRef {
    const ref = plan(pos)
    if (ref.startU % PAGE_SIZE !== 0 || pos < ref.startU || pos >= ref.startU + ref.sizeU) {
      throw new FormatError(`${describeRef(ref)} does not cover page offset ${pos} on a ${PAGE_SIZE}-byte boundary`)
    }
    return ref
  }

  /** The fetch in flight whose own range covers `page`, or a new one for the unit `plan` gives. */
  private fetchCovering(page: number, plan: FramePlanner, reader = true): Fetch {
    const pos = page * PAGE_SIZE
    const running = this.findInflight(pos)
    if (running) {
      if (reader) this.metrics.dedupJoins.inc()
      return running
    }
    const f = this.start(this.checkedPlan(pos, plan))
    if (reader) this.metrics.demandFetches.inc()
    return f
  }

  /**
   * Waiters are released by `verified`; the entry stays in flight (so later readers join it and copy
   * its buffer) until `settled`: written and marked present, or failed. Every fetch ends (deadline).
   */
  private start(ref: FrameRef, prefetch = false): Fetch {
    const verified = this.deps.fetcher.fetch(ref, withDeadline(this.life.signal, FETCH_TIMEOUT_MS), prefetch ? 'prefetch' : 'demand')
    verified.catch(() => {}) // waiters that gave up no longer observe it; the error is theirs, not unhandled
    const settled = verified
      .then((plain) => this.store(ref, plain))
      .catch(() => {}) // a failed fetch is its waiters' error; a failed write is logged by store
      .finally(() => {
        if (this.inflight.get(ref.startU) === entry) this.inflight.delete(ref.startU)
      })
    const entry: Fetch = { startU: ref.startU, endU: ref.startU + ref.sizeU, verified, settled }
    this.inflight.set(ref.startU, entry)
    this.metrics.fetchesStarted.inc()
    return entry
  }

  /** Write verified bytes; only once written do the pages become present. */
  private async store(ref: FrameRef, plain: Uint8Array): Promise<void> {
    // One write at a time per file: concurrent pwrites to one inode only spin on its lock (measured),
    // and waiters no longer wait for writes, so queueing them costs readers nothing.
    const turn = this.writing
    let done!: () => void
    this.writing = new Promise<void>((r) => (done = r))
    let crcs: Uint32Array | undefined
    let written = false
    try {
      await turn // also while closing: verified bytes are kept; close waits for every write
      // The page checksums of a 2 MiB frame take about half a millisecond of the main thread: after a
      // macrotask, so the readers waiting on these bytes (whose continuations are microtasks queued
      // behind this one) have copied them out first instead of waiting for the checksums.
      await new Promise<void>((resolve) => setImmediate(resolve))
      // Recorded from the verified buffer, before it goes to disk: what a later open checks the file against.
      crcs = pageCrcs(plain)
      await writeFully(this.fh, plain, ref.startU)
      written = true
    } catch (err) {
      // The waiters already have verified bytes; the pages stay missing and the next reader refetches.
      this.log.warn({ err, ref: describeRef(ref) }, 'writing a verified frame to the chunk cache failed')
    } finally {
      done()
    }
    if (!written || !crcs) return
    const added = this.presence.setRange(ref.startU / PAGE_SIZE, crcs)
    if (added > 0) this.deps.onGrow?.(added * PAGE_SIZE)
    this.scheduleFlush()
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
    // Prefetched units no demand read used while the file was open.
    this.metrics.prefetchUnused.inc(this.prefetched.size)
    this.prefetched.clear()
    this.dropAhead()
    await Promise.all([...this.inflight.values()].map((f) => f.settled)) // writes end before the handle closes
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    try {
      await this.flush()
    } finally {
      await this.fh.close()
    }
  }
}

/**
 * Fill dst with [offset, offset + dst.length): from the verified units this read holds where they
 * cover it (written or not), else from the file, whose pages `fill` found present. False if the file
 * ended before a page marked present.
 */
async function assemble(fh: FileHandle, dst: Uint8Array, offset: number, fetched: Fetched[]): Promise<boolean> {
  fetched.sort((x, y) => x.startU - y.startU)
  const end = offset + dst.byteLength
  let pos = offset
  for (const f of fetched) {
    const fEnd = f.startU + f.plain.byteLength
    if (fEnd <= pos) continue
    if (f.startU >= end) break
    if (f.startU > pos) {
      if (!(await readFull(fh, dst.subarray(pos - offset, f.startU - offset), pos))) return false
      pos = f.startU
    }
    const to = Math.min(end, fEnd)
    dst.set(f.plain.subarray(pos - f.startU, to - f.startU), pos - offset)
    pos = to
  }
  return pos >= end || readFull(fh, dst.subarray(pos - offset), pos)
}

/** Open for reading and writing, created when missing, never truncated ('a+' would force appends, 'r+' needs the file). */
async function openReadWrite(path: string): Promise<FileHandle> {
  return open(path, constants.O_RDWR | constants.O_CREAT, 0o644)
}

/** Fill dst from the file at `position`; false if the file ends first. */
async function readFull(fh: FileHandle, dst: Uint8Array, position: number): Promise<boolean> {
  return (await readUpTo(fh, dst, position)) === dst.byteLength
}

/** Fill dst from the file at `position`, with zeros past its end (a page's CRC covers a zero-padded page). */
async function readPadded(fh: FileHandle, dst: Uint8Array, position: number): Promise<void> {
  dst.fill(0, await readUpTo(fh, dst, position))
}
