/**
 * Where a node gets the header of a build file it is asked to read (DESIGN §8):
 * 1. a build this node originated and is still uploading: its own pending header;
 * 2. object storage: the final header (its presence means the build is complete);
 * 3. the peers that announce the build (then any connected peer): a pending header, served with the
 *    incomplete flag. USE_STORAGE sends us back to storage; UPLOAD_FAILED is a clear error at once.
 * Final headers are only ever taken from storage, never from bytes a peer sent (DESIGN §9).
 */
import { decodeHeader, type Header } from '../format/header.ts'
import { type BuildId, type FileKind, FILE_KINDS } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import type { SnapswarmPeer } from '../p2p/index.ts'
import { headerObjectName, loadStoredHeader } from '../read/open.ts'
import { NotFoundError, type ObjectStore } from '../storage/store.ts'
import type { BuildStatusBoard } from './build-status.ts'
import type { LocalBuilds } from './local-builds.ts'
import { BuildUnavailableError, UploadFailedError } from './resumed-file.ts'

export interface HeaderResolverDeps {
  readonly store: ObjectStore
  readonly builds: LocalBuilds
  readonly board: BuildStatusBoard
  readonly peer: SnapswarmPeer
  /** Bound on waiting for a final header that should be in storage (the switchover poll). */
  readonly pollMs: number
  readonly log: Logger
}

export class HeaderResolver {
  private readonly deps: HeaderResolverDeps

  constructor(deps: HeaderResolverDeps) {
    this.deps = deps
  }

  /**
   * The header to start reading with. A build that is not visible yet (still being framed by its
   * origin, or its announcement still on the way — a resume right after a pause) is retried with
   * backoff for up to `waitMs`; a failed upload is reported at once.
   */
  async initial(id: BuildId, kind: FileKind, signal?: AbortSignal, waitMs = 0): Promise<Header> {
    const deadline = Date.now() + waitMs
    let delay = 20
    for (;;) {
      try {
        return await this.initialOnce(id, kind, signal)
      } catch (err) {
        if (!(err instanceof BuildUnavailableError) || Date.now() + delay > deadline) throw err
      }
      await new Promise((r) => setTimeout(r, delay))
      signal?.throwIfAborted()
      delay = Math.min(delay * 2, 500)
    }
  }

  private async initialOnce(id: BuildId, kind: FileKind, signal?: AbortSignal): Promise<Header> {
    const local = this.deps.builds.get(id)
    if (local?.state === 'framing') throw new BuildUnavailableError(`build ${id} is still being framed on this node; retry shortly`)
    if (local?.state === 'pending') {
      const f = local.files.get(kind)
      if (!f) throw new BuildUnavailableError(`build ${id} has no ${kind}`)
      return f.header
    }
    const stored = await this.tryStorage(id, kind)
    if (stored) return stored
    if (local?.state === 'failed' || this.deps.board.get(id) === 'failed') throw new UploadFailedError(id)
    return this.fromPeers(id, kind, signal)
  }

  /** The final header from storage, polling with backoff for up to `boundMs`. */
  async final(id: BuildId, kind: FileKind, signal?: AbortSignal, boundMs = this.deps.pollMs): Promise<Header> {
    const deadline = Date.now() + boundMs
    let delay = 50
    for (;;) {
      const h = await this.tryStorage(id, kind)
      if (h) return h
      if (this.deps.board.get(id) === 'failed' || this.deps.builds.get(id)?.state === 'failed') throw new UploadFailedError(id)
      if (Date.now() + delay > deadline) throw new BuildUnavailableError(`the final header of ${id}/${kind} did not appear in storage within ${boundMs} ms`)
      await new Promise((r) => setTimeout(r, delay))
      signal?.throwIfAborted()
      delay = Math.min(delay * 2, 1000)
    }
  }

  private async tryStorage(id: BuildId, kind: FileKind): Promise<Header | null> {
    try {
      return await loadStoredHeader(this.deps.store, id, kind)
    } catch (err) {
      if (err instanceof NotFoundError) return null
      throw err
    }
  }

  private async fromPeers(id: BuildId, kind: FileKind, signal?: AbortSignal): Promise<Header> {
    const { peer, board } = this.deps
    const announced = peer.directory.peersFor(id).map((e) => e.peer)
    const candidates = [...new Set([...announced, ...peer.node.connectedPeers()])]
    const tried: string[] = []
    for (const p of candidates) {
      let answer: Awaited<ReturnType<SnapswarmPeer['client']['getHeader']>>
      try {
        answer = await peer.client.getHeader(p, id, kind, { signal })
      } catch (err) {
        tried.push(`${p.slice(-8)}: ${(err as Error).message}`)
        continue
      }
      if (answer.status === 'OK') {
        let h: Header
        try {
          h = decodeHeader(answer.header)
        } catch (err) {
          tried.push(`${p.slice(-8)}: served an undecodable header (${(err as Error).message})`)
          continue
        }
        // A peer's header is only a pending one for the build asked; anything else is ignored.
        if (h.buildId !== id || !h.incomplete) {
          tried.push(`${p.slice(-8)}: served a header for another build or without the pending flag`)
          continue
        }
        board.set(id, 'pending')
        // Its announcement may not have reached us yet: remember who serves it for the frame requests.
        board.addHolder(id, p)
        return h
      }
      if (answer.status === 'USE_STORAGE') {
        board.set(id, 'uploaded')
        return this.final(id, kind, signal)
      }
      if (answer.status === 'UPLOAD_FAILED') {
        board.set(id, 'failed')
        throw new UploadFailedError(id)
      }
      tried.push(`${p.slice(-8)}: ${answer.status}`)
    }
    throw new BuildUnavailableError(`build ${id} is not in storage and no peer serves it (${tried.join('; ') || 'no peers'})`)
  }

  /** `GET /v1/builds/{id}`: what this node knows of a build. */
  async describe(id: BuildId): Promise<Record<string, unknown> | null> {
    const local = this.deps.builds.get(id)
    const stored: FileKind[] = []
    for (const k of FILE_KINDS) if (await this.deps.store.exists(headerObjectName(id, k))) stored.push(k)
    const peers = this.deps.peer.directory.peersFor(id).map((e) => ({ peer: e.peer, state: e.state }))
    const remote = this.deps.board.get(id)
    if (!local && stored.length === 0 && peers.length === 0 && !remote) return null
    const state = local?.state ?? (stored.length > 0 ? 'uploaded' : (remote ?? 'pending'))
    const sources: string[] = []
    if (local && local.state !== 'failed') sources.push('local')
    if (peers.length > 0) sources.push('peers')
    if (stored.length > 0) sources.push('storage')
    return {
      id,
      state,
      origin: local ? 'this-node' : undefined,
      error: local?.error,
      files: Object.fromEntries([...(local?.files ?? new Map())].map(([k, f]) => [k, { size: f.header.size, codec: f.info.frames.codec, frames: f.info.frames.frames.length }])),
      storedHeaders: stored,
      peers,
      readableFrom: sources,
    }
  }
}
