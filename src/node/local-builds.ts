/**
 * The builds this node originated (paused here): their state, the local framed copy it serves to
 * peers while the upload runs, and a small JSON record per build so a restarted origin knows what it
 * was doing (DESIGN §8; issue 6 failure paths). The local copy of a pending build is never evicted;
 * an uploaded one is kept for a grace period, then removed.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BuildInfo, Header } from '../format/header.ts'
import type { BuildId, FileKind } from '../format/types.ts'

export type BuildState = 'framing' | 'pending' | 'uploaded' | 'failed'

export interface LocalFile {
  /** The framed data file this node serves to peers (local geometry). */
  readonly dataPath: string
  /** The pending header (incomplete flag set) describing the local geometry. */
  readonly header: Header
  /** This layer's frame table (local geometry) and the SHA-256 of its uncompressed data. */
  readonly info: BuildInfo
}

export interface PauseRequest {
  readonly parent: BuildId | null
  readonly useCase: 'pause' | 'build'
  readonly files: { memfile?: string; rootfs?: string; snapfile?: string; metadata?: string }
  readonly dirty: Partial<Record<FileKind, [number, number][]>>
}

export interface LocalBuild {
  readonly id: BuildId
  readonly request: PauseRequest
  state: BuildState
  error?: string
  readonly files: Map<FileKind, LocalFile>
  readonly createdAt: number
  finishedAt?: number
}

interface Record_ {
  id: BuildId
  request: PauseRequest
  state: BuildState
  error?: string
  createdAt: number
  finishedAt?: number
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

  async add(id: BuildId, request: PauseRequest): Promise<LocalBuild> {
    const b: LocalBuild = { id, request, state: 'framing', files: new Map(), createdAt: Date.now() }
    this.builds.set(id, b)
    await mkdir(this.buildDir(id), { recursive: true })
    await this.persist(b)
    return b
  }

  async setState(b: LocalBuild, state: BuildState, error?: string): Promise<void> {
    b.state = state
    b.error = error
    if (state === 'uploaded' || state === 'failed') b.finishedAt = Date.now()
    await this.persist(b)
  }

  /**
   * Records left by a previous run. A build that was still framing or uploading when the process died
   * is returned so the caller can resume its upload from the original files or report it failed.
   */
  async recover(): Promise<Record_[]> {
    let ids: string[]
    try {
      ids = await readdir(this.dir)
    } catch {
      return []
    }
    const out: Record_[] = []
    for (const id of ids) {
      try {
        out.push(JSON.parse(await readFile(join(this.dir, id, 'state.json'), 'utf8')) as Record_)
      } catch {
        // A directory without a readable record is a half-created build: nothing to resume.
      }
    }
    return out
  }

  /** Register a build recovered from a previous run's record; its work starts again from framing. */
  async restore(rec: { id: BuildId; request: PauseRequest; createdAt: number }): Promise<LocalBuild> {
    const b: LocalBuild = { id: rec.id, request: rec.request, state: 'framing', files: new Map(), createdAt: rec.createdAt }
    this.builds.set(b.id, b)
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
    const rec: Record_ = { id: b.id, request: b.request, state: b.state, error: b.error, createdAt: b.createdAt, finishedAt: b.finishedAt }
    const path = join(this.buildDir(b.id), 'state.json')
    await writeFile(`${path}.tmp`, JSON.stringify(rec))
    await rename(`${path}.tmp`, path)
  }
}
