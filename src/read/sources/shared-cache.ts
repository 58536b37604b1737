/**
 * The shared frame cache (names in docs/FORMAT.md): a directory (an NFS mount in production) of verified frames
 * that every node of a cluster reads before going to object storage.
 *
 * Writers follow the lock / temp / hard-link protocol so readers only ever see complete files:
 * exclusive-create `{final}.lock` (stale after 10 s), write `{final}.tmp.{random}`, link it to the
 * final name (never replace: EEXIST means another writer won, which is success), unlink the temp,
 * drop the lock. The lock only saves duplicate work; correctness comes from link() being atomic and
 * never replacing, so even two writers that both broke a stale lock publish one complete file.
 *
 * This class never verifies: the fetcher verifies every frame (verify.ts) and only offers verified
 * bytes here; a corrupt entry found by the fetcher is removed with `remove` (partial or
 * corrupt frames written to the shared cache). So only what verification can check is kept or read
 * here: compressed frames (codec checksums) and raw chunks whose header gives their SHA-256. A raw
 * chunk without one (a legacy raw build) could rot on this disk and would still pass the size check:
 * it is neither written nor read, and always comes from a source that holds the original.
 */
import { randomBytes } from 'node:crypto'
import { link, mkdir, open, readFile, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { storageName } from '../../format/types.ts'
import { type Logger, silentLogger } from '../../obs/log.ts'
import { RAW_CHUNK_SIZE, SHARED_LOCK_STALE_MS, SHARED_MAX_PENDING_WRITES } from '../constants.ts'
import { ReadMetrics } from '../metrics.ts'
import type { FrameRef, FrameSource } from '../source.ts'
import { readUpTo } from '../../util/file-io.ts'

export interface SharedCacheOptions {
  readonly dir: string
  /** Source name in metrics and logs (default `shared`); the node's own frame store is another one. */
  readonly name?: string
  readonly logger?: Logger
  readonly metrics?: ReadMetrics
  readonly staleLockMs?: number
  readonly maxPendingWrites?: number
  /**
   * fsync each entry before it gets its final name (default true). A directory other nodes read
   * (NFS) needs it; a node-local store whose entries are verified again before every use does not:
   * a crash leaves at worst a short or corrupt entry, which that check finds and removes.
   */
  readonly fsync?: boolean
}

export type SharedWriteResult = 'written' | 'exists' | 'locked'

export class SharedCacheSource implements FrameSource {
  readonly name: string
  readonly dir: string
  protected readonly log: Logger
  protected readonly metrics: ReadMetrics
  private readonly staleLockMs: number
  private readonly maxPending: number
  private readonly fsync: boolean
  private readonly pending = new Set<Promise<void>>()

  constructor(opts: SharedCacheOptions) {
    this.name = opts.name ?? 'shared'
    this.dir = opts.dir
    this.log = (opts.logger ?? silentLogger).child({ component: opts.name && opts.name !== 'shared' ? opts.name : 'shared-cache' })
    this.metrics = opts.metrics ?? new ReadMetrics()
    this.staleLockMs = opts.staleLockMs ?? SHARED_LOCK_STALE_MS
    this.maxPending = opts.maxPendingWrites ?? SHARED_MAX_PENDING_WRITES
    this.fsync = opts.fsync ?? true
  }

  /**
   * `{buildId}/{file}/{startC as 16 hex}-{sizeC as hex}.frm`, raw `{buildId}/{file}/{index:012}-{size}.bin`;
   * a raw chunk off the 4 MiB grid (a raw build's digested chunks follow its frame size):
   * `{buildId}/{file}/{startU as 16 hex}-{sizeU as hex}.raw`.
   */
  entryPath(ref: FrameRef): string {
    const base = join(this.dir, ref.buildId, storageName(ref.kind))
    const hex16 = (n: number) => n.toString(16).padStart(16, '0')
    if (ref.codec !== 'none') return join(base, `${hex16(ref.startC)}-${ref.sizeC.toString(16)}.frm`)
    // The size is the chunk's own length, so a last chunk cut shorter never collides with a full one.
    if (ref.startU % RAW_CHUNK_SIZE === 0) return join(base, `${String(ref.startU / RAW_CHUNK_SIZE).padStart(12, '0')}-${ref.sizeU}.bin`)
    return join(base, `${hex16(ref.startU)}-${ref.sizeU.toString(16)}.raw`)
  }

  /** Frames and digested raw chunks: what the fetcher can verify when it reads them back. */
  keeps(ref: FrameRef): boolean {
    return ref.codec !== 'none' || ref.digest !== undefined
  }

  async fetch(ref: FrameRef, _signal: AbortSignal): Promise<Uint8Array | null> {
    if (!this.keeps(ref)) return null
    let fh: Awaited<ReturnType<typeof open>>
    try {
      fh = await open(this.entryPath(ref), 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw err
    }
    try {
      // Read one byte more than expected so an overlong entry is seen as wrong-sized by verification.
      const buf = Buffer.allocUnsafe(ref.sizeC + 1)
      return buf.subarray(0, await readUpTo(fh, buf, 0))
    } finally {
      await fh.close() // always closed: the Go reader leaked file descriptors on cache hits
    }
  }

  /** Delete an entry that failed verification, so the next reader refetches it. */
  async remove(ref: FrameRef): Promise<void> {
    await rm(this.entryPath(ref), { force: true })
    this.log.warn({ buildId: ref.buildId, kind: ref.kind, startC: ref.startC }, 'removed corrupt shared cache entry')
  }

  /** Fire-and-forget write of VERIFIED bytes: never blocks the read, errors are logged, bounded in flight. */
  offer(ref: FrameRef, verified: Uint8Array): void {
    if (!this.keeps(ref)) return
    if (this.pending.size >= this.maxPending) {
      this.countWrite('dropped')
      return
    }
    const p: Promise<void> = this.store(ref, verified).then(
      (result) => this.countWrite(result),
      (err: unknown) => {
        this.countWrite('failed')
        this.log.warn({ err, buildId: ref.buildId, startC: ref.startC }, 'frame cache write failed')
      },
    )
    this.pending.add(p)
    void p.finally(() => this.pending.delete(p))
  }

  /** One background write ended (or was dropped) with `result`. */
  protected countWrite(result: SharedWriteResult | 'failed' | 'dropped'): void {
    this.metrics.sharedWrites.inc({ result })
  }

  /** Resolves when every background write started so far has ended (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending])
  }

  /** The lock / temp / hard-link protocol (lock, write a temp file, link it into place). Call only with verified bytes. */
  async store(ref: FrameRef, verified: Uint8Array): Promise<SharedWriteResult> {
    const final = this.entryPath(ref)
    if (await exists(final)) return 'exists'
    await mkdir(dirname(final), { recursive: true })
    const lock = `${final}.lock`
    const token = randomBytes(8).toString('hex')
    if (!(await this.takeLock(lock, token))) return 'locked'
    const tmp = `${final}.tmp.${token}`
    try {
      await writeSynced(tmp, verified, this.fsync)
      await link(tmp, final)
      return 'written'
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return 'exists' // another writer won: success
      throw err
    } finally {
      await rm(tmp, { force: true })
      await this.dropLock(lock, token)
    }
  }

  private async takeLock(lock: string, token: string): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fh = await open(lock, 'wx')
        await fh.writeFile(token).finally(() => fh.close())
        return true
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const st = await stat(lock).catch(() => null)
      if (st && Date.now() - st.mtimeMs < this.staleLockMs) return false // another writer is on it
      if (st) {
        this.log.info({ lock, ageMs: Date.now() - st.mtimeMs }, 'breaking stale shared cache lock')
        await rm(lock, { force: true })
      }
    }
    return false
  }

  private async dropLock(lock: string, token: string): Promise<void> {
    // Only remove our own lock: if ours was broken as stale, the file now belongs to another writer.
    const held = await readFile(lock, 'utf8').catch(() => null)
    if (held === token) await rm(lock, { force: true })
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

async function writeSynced(path: string, data: Uint8Array, fsync: boolean): Promise<void> {
  const fh = await open(path, 'wx')
  try {
    await fh.writeFile(data)
    if (fsync) await fh.sync() // the final name must never point at bytes a crash can still lose
  } finally {
    await fh.close()
  }
}
