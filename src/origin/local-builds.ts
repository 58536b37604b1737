/**
 * The builds this node originated (paused here): their state, the local framed copy it serves to
 * peers while the upload runs, and a small record per build so a restarted origin knows what it was
 * doing. The local copy of a pending build is never evicted; an uploaded one is kept for a grace
 * period, then removed.
 *
 * A record holds the identity of the content the build announced: per source file its device,
 * inode, size and modification time (taken when the pause was accepted) and the SHA-256 of its
 * content; per framed data file its frame table and the SHA-256 of the local framed copy. A restarted
 * origin checks its sources and its local copy against these before resuming, so one build id never
 * stands for two contents. The record ends with a SHA-256 of its own text: a record with a flipped
 * byte or cut short is reported as unreadable, never half-trusted.
 */
import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { SnapswarmError } from '../errors.ts'
import type { ByteRange } from '../format/frame-table.ts'
import type { BuildInfo, Header } from '../format/header.ts'
import type { BuildId, CodecName, FileKind, OriginBuildState } from '../format/types.ts'
import { isBuildId } from '../format/uuid.ts'
import type { FileIdentity } from '../util/regular-file.ts'

export type BuildState = OriginBuildState
const STATES: readonly BuildState[] = ['framing', 'pending', 'uploaded', 'failed']

export interface LocalFile {
  /** The framed data file this node serves to peers (local geometry). */
  readonly dataPath: string
  /** The pending header (incomplete flag set) describing the local geometry. */
  readonly header: Header
  /** This layer's frame table (local geometry) and the SHA-256 of its uncompressed data. */
  readonly info: BuildInfo
  /** Source ranges of all-zero blocks left out of the data file (nil mappings); none when absent. */
  readonly holes?: readonly ByteRange[]
  /** SHA-256 of the whole source file (holes included); absent: equal to info.sha256. */
  readonly sourceSha256?: Uint8Array
}

export interface PauseRequest {
  readonly parent: BuildId | null
  readonly useCase: 'pause' | 'build'
  readonly files: { memfile?: string; rootfs?: string; snapfile?: string; metadata?: string }
  readonly dirty: Partial<Record<FileKind, [number, number][]>>
}

export type SourceName = keyof PauseRequest['files']

/** One source file as the pause accepted it. */
export interface SourceRecord {
  /** The real path that was opened. */
  readonly path: string
  readonly identity: FileIdentity
  /** SHA-256 (hex) of its content, once it has been read in full. */
  sha256?: string
}

/** What framing one data file produced, enough to check and reuse the local copy after a restart. */
export interface FramedRecord {
  /** File name of the local framed copy inside the build's directory. */
  readonly file: string
  readonly codec: CodecName
  readonly fileSize: number
  /** [sizeU, sizeC] per frame, in file order (empty for codec none). */
  readonly frames: [number, number][]
  /** SHA-256 (hex) of the source's content (holes included). */
  readonly sha256: string
  /** SHA-256 (hex) of the local framed file's bytes. */
  readonly storedSha256: string
  /**
   * Source ranges [start, end) of zero blocks left out, and the SHA-256 (hex) of the stored
   * uncompressed bytes; both absent when nothing was left out (then `fileSize` is the source's size).
   */
  readonly holes?: [number, number][]
  readonly dataSha256?: string
}

export interface LocalBuild {
  readonly id: BuildId
  readonly request: PauseRequest
  state: BuildState
  error?: string
  readonly files: Map<FileKind, LocalFile>
  readonly createdAt: number
  finishedAt?: number
  /** Identity of every source file (empty for a record a previous version wrote). */
  readonly sources: Partial<Record<SourceName, SourceRecord>>
  /** The framed data files, as recorded once framing finished. */
  readonly framed: Partial<Record<FileKind, FramedRecord>>
}

export interface BuildRecord {
  v: 2
  id: BuildId
  request: PauseRequest
  state: BuildState
  error?: string
  createdAt: number
  finishedAt?: number
  sources: Partial<Record<SourceName, SourceRecord>>
  framed: Partial<Record<FileKind, FramedRecord>>
}

/** What `recover` found in one build directory: a record that checks out, or why it does not. */
export type Recovered = { id: BuildId; record: BuildRecord } | { id: BuildId; unreadable: string }

/** Writing a pause record failed; what it wrote is gone and the id is free again. */
export class PauseRecordError extends SnapswarmError {
  constructor(code: 'ERR_NO_SPACE' | 'ERR_PAUSE_RECORD', message: string, cause: unknown) {
    super(code, message, { cause })
  }
}

export class LocalBuilds {
  private readonly dir: string
  private readonly builds = new Map<BuildId, LocalBuild>()

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'builds')
  }

  buildDir(id: BuildId): string {
    return join(this.dir, id)
  }

  get(id: BuildId): LocalBuild | undefined {
    return this.builds.get(id)
  }

  list(): LocalBuild[] {
    return [...this.builds.values()]
  }

  /**
   * Record a new build (state framing). If the record cannot be written (a full disk, any error) the
   * build is not registered, its directory is removed, and a PauseRecordError says why.
   */
  async add(id: BuildId, request: PauseRequest, sources: LocalBuild['sources'] = {}): Promise<LocalBuild> {
    const b: LocalBuild = { id, request, state: 'framing', files: new Map(), createdAt: Date.now(), sources, framed: {} }
    this.builds.set(id, b)
    try {
      await mkdir(this.buildDir(id), { recursive: true })
      await this.persist(b)
      return b
    } catch (err) {
      this.builds.delete(id)
      await rm(this.buildDir(id), { recursive: true, force: true }).catch(() => {})
      const errno = (err as NodeJS.ErrnoException).code
      const code = errno === 'ENOSPC' || errno === 'EDQUOT' ? 'ERR_NO_SPACE' : 'ERR_PAUSE_RECORD'
      throw new PauseRecordError(code, `recording pause ${id} failed (${errno ?? 'error'}): ${(err as Error).message}; nothing was kept, the id can be paused again`, err)
    }
  }

  async setState(b: LocalBuild, state: BuildState, error?: string): Promise<void> {
    b.state = state
    b.error = error
    if (state === 'uploaded' || state === 'failed') b.finishedAt = Date.now()
    await this.persist(b)
  }

  /** Write the build's record as it is now (after its sources or framed files were filled in). */
  async save(b: LocalBuild): Promise<void> {
    await this.persist(b)
  }

  /**
   * Records left by a previous run, each checked (its own SHA-256, its shape, its id). Directories
   * whose name is not a build id are skipped; the caller decides what an unreadable record means.
   */
  async recover(): Promise<Recovered[]> {
    let ids: string[]
    try {
      ids = await readdir(this.dir)
    } catch {
      return []
    }
    const out: Recovered[] = []
    for (const id of ids) {
      if (!isBuildId(id)) continue
      let text: string
      try {
        text = await readFile(join(this.dir, id, 'state.json'), 'utf8')
      } catch (err) {
        out.push({ id, unreadable: `no readable state.json (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` })
        continue
      }
      const parsed = parseRecord(text, id)
      out.push(typeof parsed === 'string' ? { id, unreadable: parsed } : { id, record: parsed })
    }
    return out
  }

  /** Register a build recovered from a previous run's record; it is not served until it is checked again. */
  async restore(rec: BuildRecord): Promise<LocalBuild> {
    const b: LocalBuild = { id: rec.id, request: rec.request, state: 'framing', files: new Map(), createdAt: rec.createdAt, sources: rec.sources, framed: rec.framed }
    this.builds.set(b.id, b)
    await this.persist(b)
    return b
  }

  /** Register, as failed, a build whose record could not be trusted: readers learn it will never complete. */
  async restoreFailed(id: BuildId, error: string): Promise<LocalBuild> {
    const b: LocalBuild = { id, request: { parent: null, useCase: 'pause', files: {}, dirty: {} }, state: 'failed', error, files: new Map(), createdAt: Date.now(), finishedAt: Date.now(), sources: {}, framed: {} }
    this.builds.set(id, b)
    await this.persist(b)
    return b
  }

  /** Remove a finished build's directory left by a previous run. */
  async forget(id: BuildId): Promise<void> {
    this.builds.delete(id)
    await rm(this.buildDir(id), { recursive: true, force: true })
  }

  /** Drop local copies of builds uploaded (or failed) more than `graceMs` ago. */
  async evictFinished(graceMs: number, now = Date.now()): Promise<BuildId[]> {
    const gone: BuildId[] = []
    for (const b of this.builds.values()) {
      if ((b.state === 'uploaded' || b.state === 'failed') && b.finishedAt !== undefined && now - b.finishedAt >= graceMs) {
        this.builds.delete(b.id)
        await rm(this.buildDir(b.id), { recursive: true, force: true })
        gone.push(b.id)
      }
    }
    return gone
  }

  private async persist(b: LocalBuild): Promise<void> {
    const rec: BuildRecord = {
      v: 2, id: b.id, request: b.request, state: b.state, error: b.error, createdAt: b.createdAt, finishedAt: b.finishedAt, sources: b.sources, framed: b.framed,
    }
    const body = JSON.stringify(rec)
    const path = join(this.buildDir(b.id), 'state.json')
    await writeFile(`${path}.tmp`, `${body}\n${sha256Hex(body)}\n`)
    await rename(`${path}.tmp`, path)
  }
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/** The record in `text`, or why it cannot be trusted. */
export function parseRecord(text: string, id: string): BuildRecord | string {
  const lines = text.split('\n')
  if (lines.length !== 3 || lines[2] !== '') return 'not a checksummed record (written by an older version, or cut short)'
  if (sha256Hex(lines[0]) !== lines[1]) return 'its SHA-256 does not match its content (damaged)'
  let rec: BuildRecord
  try {
    rec = JSON.parse(lines[0]) as BuildRecord
  } catch {
    return 'not valid JSON'
  }
  if (rec === null || typeof rec !== 'object' || rec.v !== 2) return `unknown record version ${JSON.stringify((rec as { v?: unknown })?.v)}`
  if (rec.id !== id) return `it names build ${String(rec.id)}, not its directory's ${id}`
  if (!STATES.includes(rec.state)) return `unknown state ${JSON.stringify(rec.state)}`
  if (typeof rec.request !== 'object' || rec.request === null || typeof rec.request.files !== 'object') return 'no pause request in it'
  if (typeof rec.sources !== 'object' || rec.sources === null || typeof rec.framed !== 'object' || rec.framed === null) return 'no source identities in it'
  if (!Number.isFinite(rec.createdAt)) return 'no creation time in it'
  if (typeof rec.request.dirty !== 'object' || rec.request.dirty === null) rec.request = { ...rec.request, dirty: {} }
  return rec
}
