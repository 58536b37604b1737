/**
 * Local-filesystem ObjectStore: a directory laid out like the bucket (`{root}/{buildId}/memfile.zstd`,
 * DESIGN §3), so a stored build can be inspected and decompressed with stock tools. The embedded
 * default for users without a cloud account.
 *
 * Hidden top-level directories hold what is not an object: `.tmp/` (atomic-write temporaries),
 * `.meta/{name}.json` (custom metadata sidecars) and `.uploads/{id}/` (multipart staging). Names whose
 * first segment starts with `.` are therefore reserved here.
 *
 * Every write is temp file + fsync + link(2) to the final name, so a reader sees no object or the whole
 * one, and writes are create-only (ObjectExistsError): link refuses an existing name atomically, where
 * a rename would silently replace it. Limitations against GCS: `a/b` and `a/b/c` cannot both exist
 * (file vs directory); the metadata sidecar is written just after the data is linked, so a reader
 * racing a write may see the new object without its metadata for that moment.
 */
import { randomUUID } from 'node:crypto'
import { type FileHandle, link, mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import { InvalidArgumentError, LimitError } from '../format/errors.ts'
import { FsUpload } from './fs-upload.ts'
import { fsError, fsyncDir, readFully, writeDurable } from './fs-util.ts'
import {
  BucketNotFoundError,
  type CleanupOptions,
  checkName,
  checkRange,
  type GetOptions,
  type MultipartUpload,
  NotFoundError,
  ObjectExistsError,
  ObjectRangeError,
  type ObjectStat,
  type ObjectStore,
  type PutOptions,
} from './store.ts'

const TMP_DIR = '.tmp'
const META_DIR = '.meta'
const UPLOADS_DIR = '.uploads'

export class FsStore implements ObjectStore {
  readonly url: string
  readonly root: string

  private constructor(root: string) {
    this.root = root
    this.url = pathToFileURL(root).href
  }

  /**
   * Opens the store rooted at the absolute directory `root`, creating it if needed; with
   * `create: false` (a reader) the directory must exist and nothing is created.
   */
  static async open(root: string, opts: { create?: boolean } = {}): Promise<FsStore> {
    if (!root.startsWith('/')) throw new InvalidArgumentError(`fs store root: expected an absolute path, found ${root}`)
    const store = new FsStore(resolve(root))
    if (opts.create === false) {
      const st = await stat(store.root).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') throw new BucketNotFoundError(`storage directory ${store.root}`, { cause: err })
        throw fsError(err, 'open', store.root, false)
      })
      if (!st.isDirectory()) throw new InvalidArgumentError(`storage directory ${store.root}: expected a directory, found another kind of file`)
      return store
    }
    await Promise.all([TMP_DIR, META_DIR, UPLOADS_DIR].map((d) => mkdir(join(store.root, d), { recursive: true })))
    return store
  }

  async put(name: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    this.objectPath(name)
    opts.signal?.throwIfAborted()
    const tmp = this.tmpPath()
    try {
      await writeDurable(tmp, data, opts.signal)
      opts.signal?.throwIfAborted()
      await this.install(tmp, name, opts.metadata ?? {})
    } catch (err) {
      await rm(tmp, { force: true })
      throw fsError(err, 'put', name, false)
    }
  }

  startUpload(name: string, opts: { metadata?: Record<string, string> } = {}): MultipartUpload {
    this.objectPath(name)
    const id = randomUUID()
    return new FsUpload(
      {
        dir: join(this.root, UPLOADS_DIR, id),
        tmpPath: () => this.tmpPath(),
        install: (tmp) => this.install(tmp, name, opts.metadata ?? {}),
      },
      name,
    )
  }

  async getRange(name: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkRange(offset, length)
    return this.withFile(name, 'getRange', signal, async (fh, size) => {
      if (offset + length > size) throw new ObjectRangeError(name, offset, length, size)
      return readFully(fh, name, offset, length)
    })
  }

  async get(name: string, opts: GetOptions = {}): Promise<Uint8Array> {
    return this.withFile(name, 'get', opts.signal, async (fh, size) => {
      if (opts.maxBytes !== undefined && size > opts.maxBytes) {
        throw new LimitError(`object ${JSON.stringify(name)}: size ${size} above the limit of ${opts.maxBytes} bytes`)
      }
      return readFully(fh, name, 0, size)
    })
  }

  async stat(name: string): Promise<ObjectStat | null> {
    const path = this.objectPath(name)
    try {
      const st = await stat(path)
      if (!st.isFile()) return null
      return { size: st.size, metadata: await this.readMeta(name) }
    } catch (err) {
      const e = fsError(err, 'stat', name)
      if (e instanceof NotFoundError) return null
      throw e
    }
  }

  async exists(name: string): Promise<boolean> {
    return (await this.stat(name)) !== null
  }

  async delete(name: string): Promise<void> {
    const path = this.objectPath(name)
    for (const p of [path, this.metaPath(name)]) {
      try {
        await unlink(p)
      } catch (err) {
        // A missing object (or a "directory" prefix, which is no object) means nothing to delete.
        const code = (err as NodeJS.ErrnoException).code
        if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EISDIR') {
          throw fsError(err, 'delete', name)
        }
      }
    }
  }

  async list(prefix: string): Promise<string[]> {
    const cut = prefix.lastIndexOf('/')
    const base = cut === -1 ? '' : prefix.slice(0, cut)
    // A prefix whose directory part is no valid name can match no object (and must not escape root).
    if (base !== '' && !isValidName(base)) return []
    let entries: Awaited<ReturnType<typeof walk>>
    try {
      entries = await walk(join(this.root, base), base === '')
    } catch (err) {
      if (fsError(err, 'list', prefix) instanceof NotFoundError) return []
      throw fsError(err, 'list', prefix)
    }
    const names = entries.map((p) => relative(this.root, p).split(sep).join('/'))
    return names.filter((n) => n.startsWith(prefix)).sort()
  }

  async cleanupStaleUploads(opts: CleanupOptions): Promise<number> {
    const cutoff = Date.now() - opts.olderThanMs
    let removed = 0
    const uploads = join(this.root, UPLOADS_DIR)
    for (const id of await readdir(uploads)) {
      const dir = join(uploads, id)
      const st = await stat(dir).catch(() => null)
      if (st === null || st.mtimeMs > cutoff) continue
      const target = await FsUpload.targetOf(dir)
      if (opts.prefix && !(target ?? '').startsWith(opts.prefix)) continue
      await rm(dir, { recursive: true, force: true })
      removed++
    }
    if (opts.prefix) return removed
    // Temporaries of crashed atomic writes carry no name; only an unfiltered cleanup removes them.
    for (const f of await readdir(join(this.root, TMP_DIR))) {
      const path = join(this.root, TMP_DIR, f)
      const st = await stat(path).catch(() => null)
      if (st === null || st.mtimeMs > cutoff) continue
      await rm(path, { force: true })
      removed++
    }
    return removed
  }

  async close(): Promise<void> {}

  /** Opens a name for reading; the handle is always closed (DESIGN §9: fds leaked on cache hits). */
  private async withFile<T>(
    name: string,
    op: string,
    signal: AbortSignal | undefined,
    fn: (fh: FileHandle, size: number) => Promise<T>,
  ): Promise<T> {
    const path = this.objectPath(name)
    signal?.throwIfAborted()
    let fh: FileHandle
    try {
      fh = await open(path, 'r')
    } catch (err) {
      throw fsError(err, op, name)
    }
    try {
      const st = await fh.stat()
      if (!st.isFile()) throw new NotFoundError(name)
      const out = await fn(fh, st.size)
      signal?.throwIfAborted()
      return out
    } catch (err) {
      throw fsError(err, op, name)
    } finally {
      await fh.close()
    }
  }

  /**
   * Publishes a fully written temp file under `name`, create-only: link(2) is the one atomic step that
   * decides between racing writers, and it never replaces a stored object. Only the winner then writes
   * the metadata sidecar (a loser never touches the winner's); if that fails the new object is
   * unlinked again, so a put either succeeds whole or leaves nothing.
   */
  private async install(tmp: string, name: string, metadata: Record<string, string>): Promise<void> {
    const dest = this.objectPath(name)
    await mkdir(dirname(dest), { recursive: true })
    try {
      await link(tmp, dest)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      // A "directory" prefix of other objects is no object: that is a plain failure, not a lost race.
      if ((await stat(dest).catch(() => null))?.isDirectory()) throw err
      throw new ObjectExistsError(name, { cause: err })
    }
    try {
      await rm(tmp, { force: true })
      await this.writeMeta(name, metadata)
      await fsyncDir(dirname(dest))
    } catch (err) {
      await unlink(dest).catch(() => {})
      throw err
    }
  }

  /** The sidecar of an object this writer just created; a stale one of an earlier object is replaced. */
  private async writeMeta(name: string, metadata: Record<string, string>): Promise<void> {
    const metaPath = this.metaPath(name)
    if (Object.keys(metadata).length === 0) {
      await rm(metaPath, { force: true })
      return
    }
    const metaTmp = this.tmpPath()
    try {
      await writeDurable(metaTmp, Buffer.from(JSON.stringify(metadata)))
      await mkdir(dirname(metaPath), { recursive: true })
      await rename(metaTmp, metaPath)
    } catch (err) {
      await rm(metaTmp, { force: true })
      throw err
    }
  }

  private async readMeta(name: string): Promise<Record<string, string>> {
    try {
      return JSON.parse(await readFile(this.metaPath(name), 'utf8')) as Record<string, string>
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
      throw fsError(err, 'stat', name)
    }
  }

  /** Path of an object; validated names cannot escape the root (no `..`, not absolute, not reserved). */
  private objectPath(name: string): string {
    checkName(name)
    if (name.startsWith('.')) {
      throw new InvalidArgumentError(`object name ${JSON.stringify(name)}: a first segment starting with "." is reserved`)
    }
    return join(this.root, name)
  }

  private metaPath(name: string): string {
    return join(this.root, META_DIR, `${name}.json`)
  }

  private tmpPath(): string {
    return join(this.root, TMP_DIR, `${randomUUID()}.tmp`)
  }
}

function isValidName(name: string): boolean {
  try {
    checkName(name)
    return true
  } catch {
    return false
  }
}

/** Every regular file under `dir`; at the root, the hidden top-level directories are skipped. */
async function walk(dir: string, atRoot: boolean): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (atRoot && e.name.startsWith('.')) continue
    const path = join(dir, e.name)
    if (e.isFile()) out.push(path)
    else if (e.isDirectory()) {
      for (const sub of await readdir(path, { withFileTypes: true, recursive: true })) {
        if (sub.isFile()) out.push(join(sub.parentPath, sub.name))
      }
    }
  }
  return out
}
