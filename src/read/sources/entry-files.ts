/**
 * Frame entries as files, shared by the shared frame cache (shared-cache.ts) and the node's frame store
 * (frame-store.ts): reading one, publishing one so readers only ever see complete files, and the
 * bounded set of background writes both run behind reads.
 *
 * The shared cache (several nodes write one directory) publishes with the lock / temp / hard-link
 * protocol: exclusive-create `{final}.lock` (stale after
 * `staleLockMs`), write `{final}.tmp.{random}`, link it to the final name (never replace: EEXIST means
 * another writer won, which is success), unlink the temp, drop the lock. The lock only saves duplicate
 * work; correctness comes from link() being atomic and never replacing, so even two writers that both
 * broke a stale lock publish one complete file. The frame store, which only its node writes,
 * publishes with a temp file and a rename (`publishOwnEntry`).
 */
import { randomBytes } from 'node:crypto'
import { link, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Logger } from '../../obs/log.ts'
import { openIfExists, readUpTo } from '../../util/file-io.ts'

export type SharedWriteResult = 'written' | 'exists' | 'locked'

/** How one background write ended: published, already there, another writer on it, failed, or dropped (too many in flight). */
export type WriteOutcome = SharedWriteResult | 'failed' | 'dropped'

export interface PublishOptions {
  readonly staleLockMs: number
  readonly log: Logger
}

/**
 * Up to `size` + 1 bytes of the entry at `path` (one more than expected, so an overlong entry is seen as
 * wrong-sized by verification); null when there is no such file.
 */
export async function readEntry(path: string, size: number): Promise<Uint8Array | null> {
  const fh = await openIfExists(path)
  if (!fh) return null
  try {
    const buf = Buffer.allocUnsafe(size + 1)
    return buf.subarray(0, await readUpTo(fh, buf, 0))
  } finally {
    await fh.close() // always closed: the Go reader leaked file descriptors on cache hits
  }
}

/** Publish VERIFIED bytes at `final` with the lock / temp / hard-link protocol (the temp file fsynced first). */
export async function publishEntry(final: string, verified: Uint8Array, opts: PublishOptions): Promise<SharedWriteResult> {
  if (await exists(final)) return 'exists'
  await mkdir(dirname(final), { recursive: true })
  const lock = `${final}.lock`
  const token = randomBytes(8).toString('hex')
  if (!(await takeLock(lock, token, opts))) return 'locked'
  const tmp = `${final}.tmp.${token}`
  try {
    await writeSynced(tmp, verified)
    await link(tmp, final)
    return 'written'
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return 'exists' // another writer won: success
    throw err
  } finally {
    await rm(tmp, { force: true })
    await dropLock(lock, token)
  }
}

/**
 * Publish VERIFIED bytes at `final` in a directory only this process writes (the node's frame store):
 * write `{final}.tmp.{random}`, rename it to `final`. Readers only ever see complete files; the caller
 * keeps two writes of one entry from running at once, so no lock is needed, and a rename that replaces
 * an entry replaces it with the same verified bytes. The directory is made on first use only (a
 * missing one costs one failed open, not a mkdir per entry). Four syscalls instead of the shared
 * protocol's eleven: it runs once per frame read.
 */
export async function publishOwnEntry(final: string, verified: Uint8Array): Promise<void> {
  const tmp = `${final}.tmp.${randomBytes(6).toString('hex')}`
  try {
    await writeFile(tmp, verified, { flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
      await mkdir(dirname(final), { recursive: true })
      await writeFile(tmp, verified, { flag: 'wx' })
    })
    await rename(tmp, final)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

/** Fire-and-forget writes run behind reads: never blocking, errors logged, at most `max` in flight. */
export class BackgroundWrites {
  private readonly pending = new Set<Promise<void>>()
  private readonly max: number
  private readonly count: (outcome: WriteOutcome) => void
  private readonly log: Logger

  constructor(max: number, count: (outcome: WriteOutcome) => void, log: Logger) {
    this.max = max
    this.count = count
    this.log = log
  }

  /** Start `write` unless too many are in flight (then it is dropped, never queued). */
  run(what: Record<string, unknown>, write: () => Promise<SharedWriteResult>): void {
    if (this.pending.size >= this.max) {
      this.count('dropped')
      return
    }
    const p: Promise<void> = write().then(
      (result) => this.count(result),
      (err: unknown) => {
        this.count('failed')
        this.log.warn({ err, ...what }, 'frame cache write failed')
      },
    )
    this.pending.add(p)
    void p.finally(() => this.pending.delete(p))
  }

  /** Resolves when every write started so far has ended. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending])
  }
}

async function takeLock(lock: string, token: string, opts: PublishOptions): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(lock, 'wx')
      await fh.writeFile(token).finally(() => fh.close())
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const st = await stat(lock).catch(() => null)
    if (st && Date.now() - st.mtimeMs < opts.staleLockMs) return false // another writer is on it
    if (st) {
      opts.log.info({ lock, ageMs: Date.now() - st.mtimeMs }, 'breaking stale shared cache lock')
      await rm(lock, { force: true })
    }
  }
  return false
}

async function dropLock(lock: string, token: string): Promise<void> {
  // Only remove our own lock: if ours was broken as stale, the file now belongs to another writer.
  const held = await readFile(lock, 'utf8').catch(() => null)
  if (held === token) await rm(lock, { force: true })
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

async function writeSynced(path: string, data: Uint8Array): Promise<void> {
  const fh = await open(path, 'wx')
  try {
    await fh.writeFile(data)
    await fh.sync() // the final name must never point at bytes a crash can still lose
  } finally {
    await fh.close()
  }
}
