/**
 * Frame source selection (src/swarm/select.ts), pure: holders first and spread among the least
 * penalised and least loaded, a per-peer cap, then peers fetching the frame, then the one member
 * responsible for a cold frame, then this node; rendezvous ownership is shared evenly and moves
 * only a leaving member's share.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { rng as seeded } from '../../bench/lib/rng.ts'
import { frameKey, planFrameSources, rendezvousOwner, type SourceCandidate } from '../../src/swarm/select.ts'

const c = (peer: string, over: Partial<SourceCandidate> = {}): SourceCandidate => ({ peer, holds: false, fetching: false, load: 0, penalty: 0, ...over })
const base = { frameKey: 'b/memfile/t/0', self: 'S', members: ['S'], rng: seeded(1) }

describe('frame source selection', () => {
  it('spreads requests over the holders instead of always asking the first', () => {
    const rng = seeded(7)
    const firsts = new Map<string, number>()
    const holders = ['A', 'B', 'C', 'D'].map((p) => c(p, { holds: true }))
    for (let i = 0; i < 4000; i++) {
      const first = planFrameSources({ ...base, candidates: holders, rng })[0]
      assert.equal(first.kind, 'holder')
      if (first.kind === 'holder') firsts.set(first.peer, (firsts.get(first.peer) ?? 0) + 1)
    }
    for (const p of ['A', 'B', 'C', 'D']) assert.ok((firsts.get(p) ?? 0) > 800, `${p} first ${firsts.get(p)} times of 4000`)
  })

  it('least penalised, then least loaded first; a holder at its cap after followers; a penalised holder last', () => {
    const plan = planFrameSources({
      ...base,
      maxInFlightPerPeer: 4,
      candidates: [c('busy', { holds: true, load: 4 }), c('bad', { holds: true, penalty: 10 }), c('loaded', { holds: true, load: 2 }), c('idle', { holds: true }), c('f', { fetching: true })],
    })
    assert.deepEqual(plan, [
      { kind: 'holder', peer: 'idle' },
      { kind: 'holder', peer: 'loaded' },
      { kind: 'fetching', peer: 'f' },
      { kind: 'holder', peer: 'busy' },
      { kind: 'holder', peer: 'bad' },
      { kind: 'self' },
    ])
  })

  it('a holder with a small penalty (errors) is asked after clean ones, still before followers', () => {
    const plan = planFrameSources({ ...base, candidates: [c('flaky', { holds: true, penalty: 2 }), c('clean', { holds: true, load: 3 }), c('f', { fetching: true })] })
    assert.deepEqual(plan, [{ kind: 'holder', peer: 'clean' }, { kind: 'holder', peer: 'flaky' }, { kind: 'fetching', peer: 'f' }, { kind: 'self' }])
  })

  it('a frame being fetched is followed (at most two followers), and no owner is asked then', () => {
    const plan = planFrameSources({ ...base, members: ['S', 'A', 'B', 'C'], candidates: [c('A', { fetching: true }), c('B', { fetching: true }), c('C', { fetching: true })] })
    assert.equal(plan.filter((s) => s.kind === 'fetching').length, 2)
    assert.equal(plan.some((s) => s.kind === 'owner'), false)
    assert.deepEqual(plan.at(-1), { kind: 'self' })
  })

  it('a cold frame goes to its rendezvous owner (one node fetches, the others follow), or to this node when it owns it', () => {
    const members = ['S', 'A', 'B', 'C']
    const owners = new Map<string, number>()
    for (let i = 0; i < 400; i++) {
      const key = frameKey('b', 'memfile', 't', i)
      const owner = rendezvousOwner(key, members)!
      owners.set(owner, (owners.get(owner) ?? 0) + 1)
      // Every member computes the same owner, whatever order it lists the members in.
      assert.equal(rendezvousOwner(key, [...members].reverse()), owner)
      const plan = planFrameSources({ ...base, frameKey: key, members, candidates: members.filter((m) => m !== 'S').map((m) => c(m)) })
      assert.deepEqual(plan, owner === 'S' ? [{ kind: 'self' }] : [{ kind: 'owner', peer: owner }, { kind: 'self' }])
      assert.deepEqual(planFrameSources({ ...base, frameKey: key, members, relayed: true, candidates: [] }), [{ kind: 'self' }], 'a relayed fetch is never handed on')
    }
    for (const m of members) assert.ok((owners.get(m) ?? 0) > 60, `${m} owns ${owners.get(m)} of 400 frames`)
  })

  it('a member leaving moves only its own frames to other owners', () => {
    const all = ['A', 'B', 'C', 'D', 'E']
    for (let i = 0; i < 300; i++) {
      const key = frameKey('b', 'rootfs', 't', i)
      const before = rendezvousOwner(key, all)
      const after = rendezvousOwner(key, all.filter((m) => m !== 'C'))
      if (before !== 'C') assert.equal(after, before)
    }
  })

  it('an owner this node already has at the cap is not asked', () => {
    const members = ['S', 'A']
    const key = Array.from({ length: 50 }, (_, i) => frameKey('b', 'memfile', 't', i)).find((k) => rendezvousOwner(k, members) === 'A')!
    assert.deepEqual(planFrameSources({ ...base, frameKey: key, members, maxInFlightPerPeer: 2, candidates: [c('A', { load: 2 })] }), [{ kind: 'self' }])
  })
})

describe('penalties and ownership', () => {
  it('a member penalised for a corrupt frame owns nothing: its cold frames go to the owner among the others', () => {
    const members = ['S', 'A', 'B']
    let moved = 0
    for (let i = 0; i < 200; i++) {
      const key = frameKey('b', 'memfile', 't', i)
      const plan = planFrameSources({ ...base, frameKey: key, members, candidates: [c('A', { penalty: 10 }), c('B')] })
      assert.equal(plan.some((s) => s.kind === 'owner' && s.peer === 'A'), false)
      if (rendezvousOwner(key, members) === 'A') {
        moved++
        assert.deepEqual(plan[0], rendezvousOwner(key, ['S', 'B']) === 'B' ? { kind: 'owner', peer: 'B' } : { kind: 'self' })
      }
    }
    assert.ok(moved > 20, `${moved} frames of A's moved`)
  })
})
