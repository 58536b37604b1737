/**
 * The peer slot of the read path (DESIGN §7-§8): frames of builds this node originated come from its
 * local framed copy; others from the peers that announce the build, one at a time, each with a
 * deadline and stall detection. NOT_AVAILABLE, BUSY, an error or a stall moves on to the next peer;
 * USE_STORAGE and UPLOAD_FAILED are recorded on the status board (the switchover's signals) and end
 * the peer attempt. A peer whose frame failed verification is never asked for that frame again.
 */
import type { FileHandle } from 'node:fs/promises'
import { open } from 'node:fs/promises'
import type { PeerClient, PeerDirectory } from '../p2p/index.ts'
import { type FrameAnswer, FrameBatcher } from './frame-batcher.ts'
import type { FrameRef, FrameSource } from '../read/source.ts'
import type { BuildStatusBoard } from './build-status.ts'
import type { LocalBuilds } from './local-builds.ts'

export interface PeerSourceOptions {
  readonly timeoutMs: number
  readonly stallMs: number
}

const refKey = (r: FrameRef) => `${r.buildId}/${r.kind}/${r.codec}/${r.startC}/${r.sizeC}`

export class PeerFrameSource implements FrameSource {
  readonly name = 'peer'
  /** After a corrupt answer the fetcher asks again once: the next attempt skips the peer that sent it. */
  readonly retryAfterPenalty = true
  private readonly batcher: FrameBatcher
  private readonly directory: PeerDirectory
  private readonly board: BuildStatusBoard
  private readonly local: LocalBuilds
  /** Peers that served a bad copy of a frame (by frame key): never trusted for it again. */
  private readonly distrusted = new Map<string, Set<string>>()
  /** Who served the last answer for a frame, so a verification failure can be pinned on them. */
  private readonly servedBy = new Map<string, string>()
  private readonly score = new Map<string, number>()

  constructor(client: PeerClient, directory: PeerDirectory, board: BuildStatusBoard, local: LocalBuilds, opts: PeerSourceOptions) {
    this.batcher = new FrameBatcher(client, opts)
    this.directory = directory
    this.board = board
    this.local = local
  }

  async fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null> {
    const own = await this.fromLocal(ref)
    if (own) return own
    const key = refKey(ref)
    const bad = this.distrusted.get(key)
    const announced = this.directory.peersFor(ref.buildId).map((e) => e.peer)
    const peers = [...new Set([...announced, ...this.board.holdersOf(ref.buildId)])]
      .filter((p) => !bad?.has(p))
      .sort((a, b) => (this.score.get(a) ?? 0) - (this.score.get(b) ?? 0))
    for (const peer of peers) {
      signal.throwIfAborted()
      let answer: FrameAnswer
      try {
        answer = await this.batcher.get(peer, ref.buildId, ref.kind, ref.codec, { startC: ref.startC, sizeC: ref.sizeC }, signal)
      } catch {
        if (signal.aborted) throw signal.reason
        this.score.set(peer, (this.score.get(peer) ?? 0) + 1)
        continue
      }
      if (answer.status === 'OK') {
        remember(this.servedBy, key, peer)
        return answer.bytes
      }
      if (answer.status === 'USE_STORAGE') {
        this.board.set(ref.buildId, 'uploaded')
        return null
      }
      if (answer.status === 'UPLOAD_FAILED') {
        this.board.set(ref.buildId, 'failed')
        return null
      }
    }
    return null
  }

  /** Called by the fetcher when bytes this source returned failed verification. */
  penalize(ref: FrameRef): void {
    const key = refKey(ref)
    const peer = this.servedBy.get(key)
    if (!peer) return
    this.servedBy.delete(key)
    const set = this.distrusted.get(key) ?? new Set<string>()
    remember(this.distrusted, key, set)
    set.add(peer)
    this.score.set(peer, (this.score.get(peer) ?? 0) + 10)
  }

  /** This node's own pending (or recently uploaded) build, in the geometry it framed locally. */
  private async fromLocal(ref: FrameRef): Promise<Uint8Array | null> {
    const b = this.local.get(ref.buildId)
    const file = b?.files.get(ref.kind)
    if (!file || (b!.state !== 'pending' && b!.state !== 'uploaded') || file.info.frames.codec !== ref.codec) return null
    let fh: FileHandle | undefined
    try {
      fh = await open(file.dataPath, 'r')
      const buf = Buffer.allocUnsafe(ref.sizeC)
      const { bytesRead } = await fh.read(buf, 0, ref.sizeC, ref.startC)
      return bytesRead === ref.sizeC ? buf : null
    } catch {
      return null // evicted between the check and the read: ask the cluster
    } finally {
      await fh?.close()
    }
  }
}

/** Per-frame bookkeeping stays bounded in a long-running node: the oldest entries go first. */
const MAX_TRACKED_FRAMES = 8192

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key)
  map.set(key, value)
  if (map.size > MAX_TRACKED_FRAMES) map.delete(map.keys().next().value!)
}
