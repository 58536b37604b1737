/**
 * Local-filesystem ObjectStore: a directory laid out like the bucket (`{root}/{buildId}/memfile.zstd`,
 * docs/FORMAT.md), so a stored build can be inspected and decompressed with stock tools. The embedded
 * default for users without a cloud account.
 *
 * An object's uncompressed size (metadata key `uncompressed-size`) is kept as e2b-dev/infra's
 * filesystem backend keeps it: a sidecar file `{object}.uncompressed-size` beside the object holding
 * the decimal number, so e2b's `Size()` of a snapswarm `memfile.zstd` is its uncompressed size, and a
 * bucket e2b wrote (sidecars only) reads here with its sizes. Names ending in `.uncompressed-size` are
 * therefore reserved, and never listed. Other custom metadata keys (snapswarm writes none) go to
 * `.meta/{name}.json`.
 *
 * Hidden top-level directories hold what is not an object: `.tmp/` (atomic-write temporaries),
 * `.meta/` (other metadata) and `.uploads/{id}/` (multipart staging), each made only when first
 * needed, so a bucket only read, or only given objects with a size, has none of them. They cannot
 * live outside the root: a temporary must be on the objects' filesystem for link(2) to publish it
 * atomically. e2b never lists a bucket's root (it opens known names under a build id), and a name
 * starting with `.` is no build id. Names whose first segment starts with `.` are reserved here.
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
import { InvalidArgumentError, LimitError } from '../errors.ts'
import { SIZE_SIDECAR_SUFFIX, UNCOMPRESSED_SIZE_KEY } from '../format/layout.ts'
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
/** e2b's sidecar: `{object}.uncompressed-size` (its SizeSidecar, metadata key ObjectMetadataUncompressedSize). */
const SIZE_KEY = UNCOMPRESSED_SIZE_KEY
const SIZE_SIDECAR = SIZE_SIDECAR_SUFFIX
/** A sidecar holds a decimal integer; more than this is not one (read like e2b: anything else is ignored). */
const MAX_SIDECAR_BYTES = 32

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
    await mkdir(store.root, { recursive: true })
    return store
  }

  async put(name: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    this.objectPath(name)
    opts.signal?.throwIfAborted()
    const tmp = await this.tmpPath()
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

  async stat(name: string, signal?: AbortSignal): Promise<ObjectStat | null> {
    const path = this.objectPath(name)
    signal?.throwIfAborted()
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

  async exists(name: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.stat(name, signal)) !== null
  }

  async delete(name: string, signal?: AbortSignal): Promise<void> {
    const path = this.objectPath(name)
    for (const p of [path, this.metaPath(name), path + SIZE_SIDECAR]) {
      signal?.throwIfAborted()
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

  async list(prefix: string, signal?: AbortSignal): Promise<string[]> {
    signal?.throwIfAborted()
    const cut = prefix.lastIndexOf('/')
    const base = cut === -1 ? '' : prefix.slice(0, cut)
    // A prefix whose directory part is no valid name can match no object (and must not escape root).
    if (base !== '' && !isValidName(base)) return []
    let entries: Awaited<ReturnType<typeof walk>>
    try {
      entries = await walk(join(this.root, base), base === '', signal)
    } catch (err) {
      signal?.throwIfAborted() // the walk stopped for the signal: no storage failure
      if (fsError(err, 'list', prefix) instanceof NotFoundError) return []
      throw fsError(err, 'list', prefix)
    }
    const names = entries.map((p) => relative(this.root, p).split(sep).join('/'))
    return names.filter((n) => n.startsWith(prefix) && !n.endsWith(SIZE_SIDECAR)).sort()
  }

  async cleanupStaleUploads(opts: CleanupOptions): Promise<number> {
    const cutoff = Date.now() - opts.olderThanMs
    let removed = 0
    const uploads = join(this.root, UPLOADS_DIR)
    for (const id of await readdirIfAny(uploads)) {
      const dir = join(uploads, id)
      const st = await stat(dir).catch(() => null)
      if (st === null || Math.floor(st.mtimeMs) > cutoff) continue
      const target = await FsUpload.targetOf(dir)
      if (opts.prefix && !(target ?? '').startsWith(opts.prefix)) continue
      await rm(dir, { recursive: true, force: true })
      removed++
    }
    if (opts.prefix) return removed
    // Temporaries of crashed atomic writes carry no name; only an unfiltered cleanup removes them.
    for (const f of await readdirIfAny(join(this.root, TMP_DIR))) {
      const path = join(this.root, TMP_DIR, f)
      const st = await stat(path).catch(() => null)
      if (st === null || Math.floor(st.mtimeMs) > cutoff) continue
      await rm(path, { force: true })
      removed++
    }
    return removed
  }

  async close(): Promise<void> {}

  /** Opens a name for reading; the handle is always closed (the Go reader leaked fds on cache hits). */
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

  /**
   * The metadata of an object this writer just created: its size as e2b's sidecar, other keys in
   * `.meta/`; a stale sidecar or `.meta` entry of an earlier object of that name is replaced or removed.
   */
  private async writeMeta(name: string, metadata: Record<string, string>): Promise<void> {
    const { [SIZE_KEY]: size, ...rest } = metadata
    const sidecar = this.objectPath(name) + SIZE_SIDECAR
    if (size === undefined) await rm(sidecar, { force: true })
    else await this.replaceFile(sidecar, Buffer.from(size))
    const metaPath = this.metaPath(name)
    if (Object.keys(rest).length === 0) await rm(metaPath, { force: true })
    else await this.replaceFile(metaPath, Buffer.from(JSON.stringify(rest)))
  }

  /** Writes `path` whole (temp file, fsync, rename over any old one). */
  private async replaceFile(path: string, bytes: Uint8Array): Promise<void> {
    const tmp = await this.tmpPath()
    try {
      await writeDurable(tmp, bytes)
      await mkdir(dirname(path), { recursive: true })
      await rename(tmp, path)
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    }
  }

  /** `.meta/` keys, and the size from e2b's sidecar when it holds a decimal integer (else ignored, as e2b does). */
  private async readMeta(name: string): Promise<Record<string, string>> {
    let meta: Record<string, string> = {}
    try {
      meta = JSON.parse(await readFile(this.metaPath(name), 'utf8')) as Record<string, string>
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, 'stat', name)
    }
    const size = await readSidecar(this.objectPath(name) + SIZE_SIDECAR)
    return size === undefined ? meta : { ...meta, [SIZE_KEY]: size }
  }

  /** Path of an object; validated names cannot escape the root (no `..`, not absolute, not reserved). */
  private objectPath(name: string): string {
    checkName(name)
    if (name.startsWith('.')) {
      throw new InvalidArgumentError(`object name ${JSON.stringify(name)}: a first segment starting with "." is reserved`)
    }
    if (name.endsWith(SIZE_SIDECAR)) {
      throw new InvalidArgumentError(`object name ${JSON.stringify(name)}: names ending in "${SIZE_SIDECAR}" are reserved for size sidecars`)
    }
    return join(this.root, name)
  }

  private metaPath(name: string): string {
    return join(this.root, META_DIR, `${name}.json`)
  }

  /** A fresh temporary's path; `.tmp/` is made the first time one is needed. */
  private async tmpPath(): Promise<string> {
    await mkdir(join(this.root, TMP_DIR), { recursive: true })
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

/** Entries of a bookkeeping directory, none when it was never made. */
async function readdirIfAny(dir: string): Promise<string[]> {
  try {
    return await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
}

/** The decimal size in a sidecar, read within a small bound; undefined when absent or not a size. */
async function readSidecar(path: string): Promise<string | undefined> {
  let fh: FileHandle
  try {
    fh = await open(path, 'r')
  } catch {
    return undefined
  }
  try {
    const buf = Buffer.alloc(MAX_SIDECAR_BYTES + 1)
    const { bytesRead } = await fh.read(buf, 0, buf.byteLength, 0)
    const text = buf.subarray(0, bytesRead).toString('latin1').trim()
    return bytesRead <= MAX_SIDECAR_BYTES && /^\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? text : undefined
  } catch {
    return undefined
  } finally {
    await fh.close()
  }
}

/** Every regular file under `dir`; at the root, the hidden top-level directories are skipped. */
async function walk(dir: string, atRoot: boolean, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    signal?.throwIfAborted()
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
