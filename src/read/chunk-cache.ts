/**
 * The local chunk cache directory: one ChunkFile per (build, promised content, file) at
 * `{dir}/{buildId}.{contentKey}/{memfile|rootfs.ext4}.data` with its presence record `.map` beside
 * it. The content key (cache-key.ts) comes from what the header promises, so a header that promises
 * other content for the same build id never reads blocks cached for the old one.
 *
 * Size limit and eviction: the bytes present are accounted per build file; above `maxBytes` whole
 * build files are evicted, least recently released first, never one that is open (a lease holds a
 * reference). When every candidate is in use the cache stays over its limit rather than break a
 * reader.
 *
 * Restart: the directory is scanned at open; each presence record is reloaded, so a restart keeps
 * the cache (a data file without a record is deleted: its bytes cannot be trusted as present). A
 * directory not named `{buildId}.{contentKey}` (the older per-build-id layout, or anything else) is
 * removed: nothing says what content it held.
 */
import { mkdir, readdir, rm, rmdir, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { InvalidArgumentError } from '../errors.ts'
import { type BuildId, FILE_KINDS, type FileKind, storageName } from '../format/types.ts'
import { isBuildId } from '../format/uuid.ts'
import { type Logger, silentLogger } from '../obs/log.ts'
import { CONTENT_KEY } from './cache-key.ts'
import { ChunkFile } from './chunk-file.ts'
import { PAGE_SIZE } from './constants.ts'
import { CacheClosedError } from './errors.ts'
import type { VerifiedFrameFetcher } from './fetcher.ts'
import { ReadMetrics } from './metrics.ts'
import { PresenceMap } from './presence.ts'

export interface ChunkCacheOptions {
  readonly dir: string
  readonly maxBytes: number
  readonly fetcher: VerifiedFrameFetcher
  readonly metrics?: ReadMetrics
  readonly logger?: Logger
}

/** A reference to an open build file; the file cannot be evicted until it is released. */
export interface ChunkFileLease extends AsyncDisposable {
  readonly file: ChunkFile
  release(): Promise<void>
}

interface Entry {
  /** `{buildId}.{contentKey}/{file}`: the paths without their suffix, relative to the cache directory. */
  readonly key: string
  readonly buildId: BuildId
  refs: number
  lastUsed: number
  bytes: number
  file: Promise<ChunkFile> | null
  closing: Promise<void> | null
}

const SUFFIX = { data: '.data', map: '.map' }

export class ChunkCache {
  readonly dir: string
  readonly maxBytes: number
  private readonly opts: ChunkCacheOptions
  private readonly metrics: ReadMetrics
  private readonly log: Logger
  private readonly entries = new Map<string, Entry>()
  private readonly deleting = new Map<string, Promise<void>>()
  private total = 0
  private clock = 0
  private evicting: Promise<void> | null = null
  private closed = false

  private constructor(opts: ChunkCacheOptions) {
    this.opts = opts
    this.dir = opts.dir
    this.maxBytes = opts.maxBytes
    this.metrics = opts.metrics ?? new ReadMetrics()
    this.log = (opts.logger ?? silentLogger).child({ component: 'chunk-cache' })
  }

  static async open(opts: ChunkCacheOptions): Promise<ChunkCache> {
    const cache = new ChunkCache(opts)
    await mkdir(opts.dir, { recursive: true })
    await cache.scan()
    await cache.evictIfNeeded()
    return cache
  }

  /** Bytes of verified data present across all build files. */
  get bytes(): number {
    return this.total
  }

  /**
   * Open the cache of one build file holding the content `contentKey` stands for (refcounted;
   * cache-key.ts). Release the lease when done reading.
   */
  async acquire(buildId: BuildId, kind: FileKind, contentKey: string): Promise<ChunkFileLease> {
    if (this.closed) throw new CacheClosedError('chunk cache is closed')
    if (!isBuildId(buildId) || !CONTENT_KEY.test(contentKey)) {
      throw new InvalidArgumentError(`chunk cache key: expected a build id and 32 hex digits, found ${JSON.stringify(buildId)} and ${JSON.stringify(contentKey)}`)
    }
    const key = `${buildId}.${contentKey}/${storageName(kind)}`
    // An eviction of these files must finish before they are reopened; then take the reference
    // synchronously, so no eviction can pick the entry in between.
    while (this.deleting.has(key)) await this.deleting.get(key)
    const e = this.entries.get(key) ?? this.addEntry(key, buildId, 0, 0)
    e.refs++
    e.lastUsed = ++this.clock
    try {
      while (e.closing) await e.closing
      e.file ??= ChunkFile.open(join(this.dir, key + SUFFIX.data), join(this.dir, key + SUFFIX.map), {
        fetcher: this.opts.fetcher,
        metrics: this.metrics,
        logger: this.opts.logger,
        onGrow: (n) => this.grow(e, n),
      })
      const file = await e.file
      return this.lease(e, file)
    } catch (err) {
      e.file = null
      await this.release(e)
      throw err
    }
  }

  /** Close every file (fetches in flight are stopped) and wait for evictions. Leases become invalid. */
  async close(): Promise<void> {
    this.closed = true
    const entries = [...this.entries.values()]
    await Promise.allSettled(entries.map(async (e) => (e.file ? (await e.file).close() : e.closing)))
    await this.evicting
    await Promise.allSettled(this.deleting.values())
  }

  private lease(e: Entry, file: ChunkFile): ChunkFileLease {
    let released = false
    const release = async (): Promise<void> => {
      if (released) return // idempotent: a double release must not free someone else's reference
      released = true
      await this.release(e)
    }
    return { file, release, [Symbol.asyncDispose]: release }
  }

  private async release(e: Entry): Promise<void> {
    e.refs--
    e.lastUsed = ++this.clock
    if (e.refs > 0 || !e.file || this.closed) return
    const file = e.file
    e.closing = (async () => {
      try {
        await (await file).close()
      } catch (err) {
        this.log.warn({ err, key: e.key }, 'closing chunk file failed')
      } finally {
        e.file = null
        e.closing = null
      }
    })()
    await e.closing
    // A released file is a candidate now: a pass already running may have looked before, so wait for
    // it and run one more. The caller then sees the cache within its limit (or everything in use).
    while (this.evicting) await this.evicting
    await this.kickEviction()
  }

  private grow(e: Entry, bytes: number): void {
    e.bytes += bytes
    this.total += bytes
    if (bytes >= 0) this.metrics.cacheBytes.inc(bytes)
    else this.metrics.cacheBytes.dec(-bytes)
    if (this.total > this.maxBytes) void this.kickEviction()
  }

  private addEntry(key: string, buildId: BuildId, bytes: number, lastUsed: number): Entry {
    const e: Entry = { key, buildId, refs: 0, lastUsed, bytes, file: null, closing: null }
    this.entries.set(key, e)
    this.total += bytes
    this.metrics.cacheBytes.inc(bytes)
    return e
  }

  /** Start an eviction pass unless one runs; resolves when the running pass ends (never rejects). */
  private kickEviction(): Promise<void> {
    if (!this.evicting && this.total > this.maxBytes && !this.closed) {
      this.evicting = this.evictIfNeeded()
        .catch((err: unknown) => this.log.warn({ err }, 'chunk cache eviction failed'))
        .finally(() => {
          this.evicting = null
        })
    }
    return this.evicting ?? Promise.resolve()
  }

  /** Evict least recently used idle, unpinned build files until under the limit (or none is left). */
  private async evictIfNeeded(): Promise<void> {
    while (this.total > this.maxBytes) {
      let victim: Entry | undefined
      for (const e of this.entries.values()) {
        if (e.refs > 0 || e.file || e.closing) continue
        if (!victim || e.lastUsed < victim.lastUsed) victim = e
      }
      if (!victim) {
        this.log.debug({ total: this.total, max: this.maxBytes }, 'chunk cache over limit, every file in use or pinned')
        return
      }
      await this.evict(victim)
    }
  }

  private async evict(e: Entry): Promise<void> {
    this.entries.delete(e.key)
    this.total -= e.bytes
    this.metrics.cacheBytes.dec(e.bytes)
    this.metrics.evictions.inc()
    const base = join(this.dir, e.key)
    const done = Promise.all([rm(base + SUFFIX.map, { force: true }), rm(base + SUFFIX.data, { force: true })])
      .then(() => rmdir(join(this.dir, dirname(e.key))).catch(() => {})) // the other file of the build may remain
      .finally(() => this.deleting.delete(e.key))
    this.deleting.set(e.key, done)
    await done
    this.log.debug({ key: e.key, bytes: e.bytes }, 'evicted build file')
  }

  /** Rebuild the index from disk; the LRU order starts from the records' modification times. */
  private async scan(): Promise<void> {
    const found: Scanned[] = []
    for (const dir of await readdir(this.dir)) {
      const buildId = dir.slice(0, dir.indexOf('.'))
      if (isBuildId(buildId) && CONTENT_KEY.test(dir.slice(buildId.length + 1))) {
        found.push(...(await this.scanDir(dir, buildId)))
        continue
      }
      // The older layout keyed by build id alone, or a stranger: it cannot be tied to any content.
      this.log.info({ dir }, 'removing a chunk cache entry not keyed by build id and content')
      await rm(join(this.dir, dir), { recursive: true, force: true })
    }
    found.sort((a, b) => a.mtime - b.mtime)
    for (const f of found) this.addEntry(f.key, f.buildId, f.bytes, ++this.clock)
  }

  /**
   * The build files of one directory: a data file and its record, both regular files. Anything else
   * is removed: data without a record cannot be trusted as present, a record without data would read
   * holes, and temp files or strangers are what a crash (or someone else) left.
   */
  private async scanDir(dir: string, buildId: BuildId): Promise<Scanned[]> {
    const entries = await readdir(join(this.dir, dir), { withFileTypes: true }).catch(() => [])
    const files = new Set(entries.filter((e) => e.isFile()).map((e) => e.name))
    const stems = FILE_KINDS.map(storageName).filter((stem) => files.has(stem + SUFFIX.data) && files.has(stem + SUFFIX.map))
    const keep = new Set(stems.flatMap((stem) => [stem + SUFFIX.data, stem + SUFFIX.map]))
    for (const e of entries) if (!keep.has(e.name)) await rm(join(this.dir, dir, e.name), { recursive: true, force: true })
    if (stems.length === 0) await rmdir(join(this.dir, dir)).catch(() => {})
    const out: Scanned[] = []
    for (const stem of stems) {
      const path = join(this.dir, dir, stem + SUFFIX.map)
      const presence = await PresenceMap.load(path)
      const mtime = (await stat(path).catch(() => null))?.mtimeMs ?? 0
      out.push({ key: `${dir}/${stem}`, buildId, bytes: presence.count * PAGE_SIZE, mtime })
    }
    return out
  }
}

interface Scanned {
  readonly key: string
  readonly buildId: BuildId
  readonly bytes: number
  readonly mtime: number
}
