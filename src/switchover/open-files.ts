/**
 * Build files open for reading on this node, shared by every request for the same (build, file):
 * one ResumedFile each, so the switchover happens once per file and all readers follow it. A file is
 * closed when its last user releases it.
 */
import type { Header } from '../format/header.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import type { BuildReader } from '../read/build-reader.ts'
import type { PrefetchSession } from '../prefetch/service.ts'
import type { BuildStatusBoard } from '../cluster/build-status.ts'
import { raceAbort } from '../util/abort.ts'
import { ResumedFile } from './resumed-file.ts'

export interface OpenFilesDeps {
  readonly board: BuildStatusBoard
  readonly log: Logger
  /** `firstReadAt`: the offset the opener reads first (a pending build's origin may send its frame with the header). */
  readonly initialHeader: (id: BuildId, kind: FileKind, signal?: AbortSignal, firstReadAt?: number) => Promise<Header>
  readonly loadFinal: (id: BuildId, kind: FileKind, signal?: AbortSignal) => Promise<Header>
  readonly openReader: (header: Header, kind: FileKind) => Promise<BuildReader>
  readonly onSwitch?: (from: Header, to: Header) => void
  readonly onUploadFailed?: 'error' | 'read-from-origin'
  /** Access recording and prefetch (src/prefetch): one session per open file, closed with it. */
  readonly prefetch?: { attach(id: BuildId, kind: FileKind, file: ResumedFile): PrefetchSession }
}

export interface FileHandleLike {
  readonly size: number
  readonly file: ResumedFile
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>
  /** Fill a caller-owned buffer (no allocation per read); nothing writes into it after this settles. */
  readInto(dst: Uint8Array, offset: number, signal?: AbortSignal): Promise<void>
  close(): Promise<void>
}

interface Entry {
  readonly file: Promise<ResumedFile>
  users: number
  idle?: NodeJS.Timeout
  session?: PrefetchSession
}

/** A file nobody reads is kept open this long, so range requests in a row share one file (and one switchover). */
const IDLE_CLOSE_MS = 30_000

export class OpenFiles {
  private readonly deps: OpenFilesDeps
  private readonly files = new Map<string, Entry>()

  constructor(deps: OpenFilesDeps) {
    this.deps = deps
  }

  /** `opts.firstReadAt`: where the caller reads first, if it knows (an HTTP range): only used when the file is not open yet. */
  async open(id: BuildId, kind: FileKind, signal?: AbortSignal, opts: { firstReadAt?: number } = {}): Promise<FileHandleLike> {
    const key = `${id}/${kind}`
    let entry = this.files.get(key)
    if (!entry) {
      // Shared by every opener: it runs without any one caller's signal (a client that goes away must
      // not fail the others); each caller only stops waiting on its own signal below.
      const file = this.deps.initialHeader(id, kind, undefined, opts.firstReadAt).then(async (header) => {
        const f = await ResumedFile.open(
          {
            buildId: id,
            kind,
            board: this.deps.board,
            log: this.deps.log,
            openReader: (h) => this.deps.openReader(h, kind),
            loadFinal: (s) => this.deps.loadFinal(id, kind, s),
            onSwitch: this.deps.onSwitch,
            onUploadFailed: this.deps.onUploadFailed,
          },
          header,
        )
        if (this.deps.prefetch) created.session = this.deps.prefetch.attach(id, kind, f)
        return f
      })
      const created: Entry = { file, users: 0 }
      entry = created
      this.files.set(key, entry)
      file.catch(() => this.files.delete(key))
    }
    entry.users++
    clearTimeout(entry.idle)
    let file: ResumedFile
    const e = entry
    try {
      file = await raceAbort(entry.file, signal)
    } catch (err) {
      // A caller that gave up while the file was opening still releases it: nobody else may come.
      this.release(key, e)
      throw err
    }
    let released = false
    return {
      size: file.size,
      file,
      read: (offset, length, s) => file.read(offset, length, s),
      readInto: (dst, offset, s) => file.readInto(dst, offset, s),
      close: async () => {
        if (released) return
        released = true
        this.release(key, e)
      },
    }
  }

  /** One user fewer; the last one's file stays open IDLE_CLOSE_MS for the next range request, then closes. */
  private release(key: string, e: Entry): void {
    if (--e.users > 0) return
    e.idle = setTimeout(() => {
      if (e.users > 0 || this.files.get(key) !== e) return
      this.files.delete(key)
      e.file.then(
        () => closeEntry(e).catch((err) => this.deps.log.warn({ err }, 'closing an idle build file failed')),
        () => {}, // it never opened: nothing to close
      )
    }, IDLE_CLOSE_MS)
    e.idle.unref()
  }

  async closeAll(): Promise<void> {
    const all = [...this.files.values()]
    this.files.clear()
    for (const e of all) clearTimeout(e.idle)
    await Promise.allSettled(all.map(closeEntry))
  }
}

/** Close an opened file and its prefetch session (which saves what it recorded). */
async function closeEntry(e: Entry): Promise<void> {
  const file = await e.file
  await Promise.all([file.close(), e.session?.close()])
}
