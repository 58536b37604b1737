/**
 * What this node has learnt about other nodes' builds from the cluster: a USE_STORAGE answer or an
 * "uploaded" announcement means the upload finished; UPLOAD_FAILED means it never will. Resumed files
 * consult this board when a pending read fails, and subscribe to it to switch over proactively.
 */
import type { BuildId } from '../format/types.ts'

export type RemoteBuildState = 'pending' | 'uploaded' | 'failed'

export class BuildStatusBoard {
  private readonly states = new Map<BuildId, RemoteBuildState>()
  private readonly listeners = new Set<(id: BuildId, state: RemoteBuildState) => void>()
  /** Peers known to hold a build without (yet) announcing it: the one that served us its pending header. */
  private readonly holders = new Map<BuildId, Set<string>>()

  addHolder(id: BuildId, peer: string): void {
    const set = this.holders.get(id) ?? new Set<string>()
    this.holders.set(id, set)
    set.add(peer)
  }

  holdersOf(id: BuildId): readonly string[] {
    return [...(this.holders.get(id) ?? [])]
  }

  get(id: BuildId): RemoteBuildState | undefined {
    return this.states.get(id)
  }

  /** Record a state; terminal states (uploaded, failed) are never downgraded to pending. */
  set(id: BuildId, state: RemoteBuildState): void {
    const prev = this.states.get(id)
    if (prev === state || (prev !== undefined && prev !== 'pending' && state === 'pending')) return
    this.states.set(id, state)
    for (const l of this.listeners) l(id, state)
  }

  subscribe(listener: (id: BuildId, state: RemoteBuildState) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}
