/**
 * The policies the simulation runs. `swarm` is the product's own frame source selection
 * (src/swarm/select.ts `planFrameSources`), called exactly as the read path calls it: node ids and
 * frame keys as strings, every member of the cluster as a rendezvous candidate, this node's requests
 * in flight per peer as the load, no penalties (no peer misbehaves here). `direct` is the behaviour
 * before the swarm: every reader fetches every frame itself from the origin or the bucket.
 */
import { planFrameSources } from '../../src/swarm/select.ts'
import type { PlanInput, SimPolicy, Step } from './engine.ts'

export function swarmPolicy(nodes: number): SimPolicy {
  const ids = Array.from({ length: nodes }, (_, i) => `node-${i}`)
  const byId = new Map(ids.map((id, i) => [id, i]))
  const keys: string[] = []
  const keyOf = (f: number): string => {
    keys[f] ??= `build/memfile/0/${f}`
    return keys[f]
  }
  return {
    name: 'swarm',
    plan(input: PlanInput): Step[] {
      const planned = planFrameSources({
        frameKey: keyOf(input.frame),
        self: ids[input.me],
        members: ids,
        candidates: input.candidates.map((c) => ({ peer: ids[c.node], holds: c.holds, fetching: c.fetching, load: c.load, penalty: 0 })),
        rng: input.random,
        relayed: input.relayed,
      })
      return planned.map((s) => (s.kind === 'self' ? s : { kind: s.kind, node: byId.get(s.peer)! }))
    },
  }
}

export const directPolicy: SimPolicy = {
  name: 'direct',
  plan: () => [{ kind: 'self' }],
}
