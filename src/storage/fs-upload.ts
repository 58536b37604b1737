/**
 * Multipart upload of the filesystem store: each part is a file in a hidden staging directory
 * (`{root}/.uploads/{id}/00001.part`); complete concatenates them, in order, into one temp file that is
 * fsynced and linked into place, create-only (the object appears whole or not at all, and an existing
 * object of that name is never replaced: ObjectExistsError, the parts stay for abort); abort removes the staging
 * directory. `upload.json` in the staging directory names the target, so a later process can clean
 * up after a crash (`FsStore.cleanupStaleUploads`). Parts are not fsynced: only the assembled file
 * is, before its rename, and a crash before that loses the upload anyway.
 */
import { randomUUID } from 'node:crypto'
import { type FileHandle, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fsError, writeDurable } from './fs-util.ts'
import { type MultipartUpload, StorageError } from './store.ts'
import { type PartInfo, UploadTracker } from './upload-state.ts'

/** Copy buffer of complete: bounded memory whatever the part sizes. */
const COPY_CHUNK = 1024 * 1024

/** What an upload needs from its store: where to stage, a temp path, and the atomic install. */
export interface FsUploadHost {
  dir: string
  tmpPath(): Promise<string>
  install(tmp: string): Promise<void>
}

export class FsUpload implements MultipartUpload {
  readonly name: string
  private readonly host: FsUploadHost
  private readonly tracker: UploadTracker
  private staging: Promise<void> | undefined

  constructor(host: FsUploadHost, name: string) {
    this.host = host
    this.name = name
    this.tracker = new UploadTracker(name)
  }

  /** The object name an (abandoned) staging directory was for, or null if unknown. */
  static async targetOf(dir: string): Promise<string | null> {
    try {
      return (JSON.parse(await readFile(join(dir, 'upload.json'), 'utf8')) as { name: string }).name
    } catch {
      return null
    }
  }

  uploadPart(partNumber: number, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    return this.tracker.writePart(partNumber, data.byteLength, async () => {
      signal?.throwIfAborted()
      await this.ensureStaging()
      const tmp = join(this.host.dir, `${partFile(partNumber)}.${randomUUID()}.tmp`)
      try {
        // Temp + rename: a retried part replaces a failed one whole, never interleaved with it.
        await writeFile(tmp, data, { signal })
        await rename(tmp, join(this.host.dir, partFile(partNumber)))
      } catch (err) {
        await rm(tmp, { force: true })
        throw fsError(err, `upload part ${partNumber} of`, this.name, false)
      }
    })
  }

  async complete(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    await this.tracker.runComplete((parts) => this.assemble(parts, signal))
    await rm(this.host.dir, { recursive: true, force: true })
  }

  async abort(): Promise<void> {
    if (!(await this.tracker.beginAbort())) return
    await rm(this.host.dir, { recursive: true, force: true })
  }

  private ensureStaging(): Promise<void> {
    this.staging ??= (async () => {
      await mkdir(this.host.dir, { recursive: true })
      await writeFile(join(this.host.dir, 'upload.json'), JSON.stringify({ name: this.name, started: Date.now() }))
    })().catch((err) => {
      this.staging = undefined
      throw err
    })
    return this.staging
  }

  /** Stream-concatenates the parts into a temp file, then installs it (create-only link last). */
  private async assemble(parts: PartInfo[], signal?: AbortSignal): Promise<void> {
    const tmp = await this.host.tmpPath()
    try {
      if (parts.length === 0) {
        await writeDurable(tmp, new Uint8Array(0), signal)
      } else {
        const out = await open(tmp, 'wx')
        try {
          for (const p of parts) await copyPart(join(this.host.dir, partFile(p.partNumber)), p.size, out, signal)
          await out.sync()
        } finally {
          await out.close()
        }
      }
      signal?.throwIfAborted()
      await this.host.install(tmp)
    } catch (err) {
      await rm(tmp, { force: true })
      throw fsError(err, 'complete', this.name, false)
    }
  }
}

function partFile(partNumber: number): string {
  return `${String(partNumber).padStart(5, '0')}.part`
}

/** Appends one part file to `out`, checking it still has the size its upload recorded. */
async function copyPart(path: string, size: number, out: FileHandle, signal?: AbortSignal): Promise<void> {
  const src = await open(path, 'r')
  try {
    const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(size, 1)))
    let copied = 0
    for (;;) {
      signal?.throwIfAborted()
      const { bytesRead } = await src.read(buf, 0, buf.length, null)
      if (bytesRead === 0) break
      await out.write(buf, 0, bytesRead)
      copied += bytesRead
    }
    if (copied !== size) {
      throw new StorageError(`part file ${path}: expected ${size} bytes, found ${copied}`, { retryable: false })
    }
  } finally {
    await src.close()
  }
}
