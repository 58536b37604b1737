/**
 * Frame availability: the bitfield (bounded by the frame table), the have message (round trips;
 * hostile input refused with a stable code before anything large is allocated) and the bookkeeping
 * of what this node and its peers hold and fetch (incremental updates, expiry, bounds).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { FrameTable, MAX_FRAMES_PER_TABLE } from '../../src/format/frame-table.ts'
import { FrameBitfield } from '../../src/swarm/bitfield.ts'
import { FETCHING_TTL_MS, MAX_FILES_PER_PEER, SwarmAvailability } from '../../src/swarm/availability.ts'
import { decodeHave, encodeHave, type HaveMessage, MAX_HAVE_BYTES, MAX_HAVE_DELTA, tableIdOf } from '../../src/swarm/have-message.ts'

const BUILD = '6c1f8f38-8d8e-4a39-9a55-2a3b1e2c9f10'

function table(n: number, sizeC = 1000): FrameTable {
  return FrameTable.fromSizes('zstd', Array.from({ length: n }, () => ({ sizeU: 2 << 20, sizeC })))
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

describe('frame bitfield', () => {
  it('sets, clears, counts and lists frames; refuses indices outside the table', () => {
    const b = new FrameBitfield(11)
    assert.equal(b.set(0), true)
    assert.equal(b.set(10), true)
    assert.equal(b.set(10), false)
    assert.equal(b.count, 2)
    assert.deepEqual([...b.indices()], [0, 10])
    assert.equal(b.has(11), false)
    assert.equal(codeOf(() => b.set(11)), 'ERR_INVALID_ARGUMENT')
    assert.equal(codeOf(() => b.set(-1)), 'ERR_INVALID_ARGUMENT')
    assert.equal(b.clear(0), true)
    assert.equal(b.count, 1)
    assert.deepEqual([...FrameBitfield.fromBytes(11, b.toBytes()).indices()], [10])
  })

  it('is bounded by the largest frame table', () => {
    assert.equal(codeOf(() => new FrameBitfield(MAX_FRAMES_PER_TABLE + 1)), 'ERR_LIMIT')
    assert.equal(codeOf(() => new FrameBitfield(-1)), 'ERR_LIMIT')
    assert.equal(new FrameBitfield(MAX_FRAMES_PER_TABLE).toBytes().byteLength, MAX_FRAMES_PER_TABLE / 8)
  })

  it('refuses bytes of the wrong length or with bits past the last frame', () => {
    assert.equal(codeOf(() => FrameBitfield.fromBytes(11, new Uint8Array(1))), 'ERR_FORMAT')
    assert.equal(codeOf(() => FrameBitfield.fromBytes(11, new Uint8Array([0, 0b1000]))), 'ERR_FORMAT')
    assert.equal(FrameBitfield.fromBytes(11, new Uint8Array([0xff, 0b111])).count, 11)
  })
})

describe('have message', () => {
  const file = { buildId: BUILD, kind: 'memfile' as const, tableId: tableIdOf(table(20)), frameCount: 20 }

  it('round-trips a full and a delta message', () => {
    const held = new FrameBitfield(20)
    held.set(3)
    held.set(19)
    const fetching = new FrameBitfield(20)
    fetching.set(4)
    const full = decodeHave(encodeHave({ ...file, shape: 'full', held, fetching }))
    assert.equal(full.shape, 'full')
    assert.deepEqual({ ...full, held: undefined, fetching: undefined }, { ...file, shape: 'full', held: undefined, fetching: undefined })
    if (full.shape !== 'full') return
    assert.deepEqual([...full.held.indices()], [3, 19])
    assert.deepEqual([...full.fetching.indices()], [4])
    const delta: HaveMessage = { ...file, shape: 'delta', held: [1, 2], fetching: [5], done: [4] }
    assert.deepEqual(decodeHave(encodeHave(delta)), delta)
  })

  it('table ids differ between tables and agree for the same table', () => {
    assert.equal(tableIdOf(table(20)), tableIdOf(table(20)))
    assert.notEqual(tableIdOf(table(20)), tableIdOf(table(21)))
    assert.notEqual(tableIdOf(table(20, 1000)), tableIdOf(table(20, 1001)))
  })

  it('hostile input: every malformed message is refused with a stable code', () => {
    const good = Buffer.from(encodeHave({ ...file, shape: 'delta', held: [1], fetching: [], done: [] }))
    const mutate = (f: (b: Buffer) => unknown) => {
      const b = Buffer.from(good)
      f(b)
      return b
    }
    const cases: [string, Uint8Array, string][] = [
      ['empty', new Uint8Array(0), 'ERR_FORMAT'],
      ['truncated head', good.subarray(0, 20), 'ERR_FORMAT'],
      ['wrong version', mutate((b) => b.writeUInt8(9, 0)), 'ERR_FORMAT'],
      ['unknown shape', mutate((b) => b.writeUInt8(7, 1)), 'ERR_FORMAT'],
      ['unknown kind', mutate((b) => b.writeUInt8(0, 18)), 'ERR_FORMAT'],
      ['frame count over the table limit', mutate((b) => b.writeUInt32BE(MAX_FRAMES_PER_TABLE + 1, 27)), 'ERR_LIMIT'],
      ['index past the frame count', mutate((b) => b.writeUInt32BE(20, 43)), 'ERR_FORMAT'],
      ['delta count over the limit', mutate((b) => b.writeUInt32BE(MAX_HAVE_DELTA + 1, 31)), 'ERR_LIMIT'],
      ['delta count larger than the bytes', mutate((b) => b.writeUInt32BE(2, 31)), 'ERR_FORMAT'],
      ['trailing bytes', Buffer.concat([good, Buffer.alloc(1)]), 'ERR_FORMAT'],
      ['oversized', new Uint8Array(MAX_HAVE_BYTES + 1), 'ERR_LIMIT'],
    ]
    for (const [what, bytes, code] of cases) assert.equal(codeOf(() => decodeHave(bytes)), code, what)
    const fullMsg = Buffer.from(encodeHave({ ...file, shape: 'full', held: new FrameBitfield(20), fetching: new FrameBitfield(20) }))
    assert.equal(codeOf(() => decodeHave(fullMsg.subarray(0, fullMsg.byteLength - 1))), 'ERR_FORMAT', 'short bitfields')
    const spare = Buffer.from(fullMsg)
    spare[spare.byteLength - 1] = 0xf0 // bits 20..23 of a 20-frame field
    assert.equal(codeOf(() => decodeHave(spare)), 'ERR_FORMAT', 'bits past the last frame')
  })
})

describe('swarm availability', () => {
  const t = table(8)
  const ref = (i: number) => ({ buildId: BUILD, kind: 'memfile' as const, codec: 'zstd' as const, startC: t.frames[i].startC, sizeC: t.frames[i].sizeC })

  it('locates frames of registered files only, by codec and exact range', () => {
    const a = new SwarmAvailability('A')
    assert.equal(a.locate(ref(0)), undefined)
    a.register(BUILD, 'memfile', t)
    assert.equal(a.locate(ref(3))?.index, 3)
    assert.equal(a.locate({ ...ref(3), codec: 'lz4' }), undefined)
    assert.equal(a.locate({ ...ref(3), sizeC: 999 }), undefined)
    assert.equal(a.register(BUILD, 'rootfs', FrameTable.fromSizes('none', [{ sizeU: 4096, sizeC: 4096 }])), undefined, 'raw files are not indexed')
  })

  it('incremental updates reach a peer: fetching, then held; a full message for a newly connected one', async () => {
    const a = new SwarmAvailability('A')
    const b = new SwarmAvailability('B')
    a.register(BUILD, 'memfile', t)
    b.register(BUILD, 'memfile', t)
    const ship = (from: SwarmAvailability, to: SwarmAvailability) => {
      for (const m of from.takeOutgoing()) to.apply(from.self, decodeHave(encodeHave(m)))
    }
    ship(a, b)
    const at = b.locate(ref(2))!
    assert.deepEqual(b.members(at, ['A', 'C']), ['B', 'A'], 'a peer that indexes the file is a member; C is not')
    assert.equal(a.startFetching(a.locate(ref(2))!), true)
    assert.equal(a.startFetching(a.locate(ref(2))!), false, 'already fetching')
    ship(a, b)
    assert.deepEqual(b.candidates(at, ['A']), [{ peer: 'A', holds: false, fetching: true, load: 0, penalty: 0 }])
    const waiting = a.whenArrived(a.locate(ref(2))!, 5_000)
    const bytes = new Uint8Array([1, 2, 3])
    a.arrived(ref(2), bytes)
    assert.equal(await waiting, bytes, 'a waiter gets the verified bytes')
    ship(a, b)
    assert.deepEqual(b.candidates(at, ['A']), [{ peer: 'A', holds: true, fetching: false, load: 0, penalty: 0 }])
    const c = new SwarmAvailability('C')
    for (const m of a.fullState()) c.apply('A', decodeHave(encodeHave(m)))
    c.register(BUILD, 'memfile', t)
    assert.equal(c.candidates(c.locate(ref(2))!, ['A'])[0].holds, true)
    assert.deepEqual(b.candidates(at, ['B']), [], 'only connected peers count')
    b.forgetPeer('A')
    assert.deepEqual(b.candidates(at, ['A']), [])
  })

  it('a build the frame store dropped is no longer held: peers get a full message without it', () => {
    const a = new SwarmAvailability('A')
    const b = new SwarmAvailability('B')
    a.register(BUILD, 'memfile', t)
    b.register(BUILD, 'memfile', t)
    a.arrived(ref(0), new Uint8Array(1))
    a.arrived(ref(4), new Uint8Array(1))
    for (const m of a.takeOutgoing()) b.apply('A', m)
    assert.equal(b.candidates(b.locate(ref(4))!, ['A'])[0].holds, true)
    a.dropHeld(BUILD)
    const out = a.takeOutgoing()
    assert.equal(out[0].shape, 'full')
    for (const m of out) b.apply('A', m)
    assert.equal(b.candidates(b.locate(ref(4))!, ['A'])[0].holds, false)
    assert.equal(a.holds(a.locate(ref(0))!), false)
  })

  it('a fetching mark expires (a peer that died mid-fetch is not waited on forever); a wait times out with null', async () => {
    let now = 0
    const a = new SwarmAvailability('A', () => now)
    const b = new SwarmAvailability('B', () => now)
    a.register(BUILD, 'memfile', t)
    b.register(BUILD, 'memfile', t)
    a.startFetching(a.locate(ref(1))!)
    for (const m of a.takeOutgoing()) b.apply('A', m)
    assert.equal(b.candidates(b.locate(ref(1))!, ['A'])[0].fetching, true)
    now += FETCHING_TTL_MS
    assert.equal(b.candidates(b.locate(ref(1))!, ['A'])[0].fetching, false)
    assert.equal(a.fetching(a.locate(ref(1))!), false)
    assert.equal(await a.whenArrived(a.locate(ref(1))!, 10), null)
  })

  it('a peer cannot make this node track more than MAX_FILES_PER_PEER files of it, nor grow a bitfield', () => {
    const b = new SwarmAvailability('B')
    for (let i = 0; i < MAX_FILES_PER_PEER + 50; i++) {
      const tableId = i.toString(16).padStart(16, '0')
      b.apply('A', { buildId: BUILD, kind: 'memfile', tableId, frameCount: 4, shape: 'delta', held: [1], fetching: [], done: [] })
    }
    b.register(BUILD, 'memfile', t)
    const at = b.locate(ref(0))!
    b.apply('A', { ...at.file, shape: 'delta', held: [0], fetching: [], done: [] })
    b.apply('A', { ...at.file, frameCount: 1000, shape: 'delta', held: [999], fetching: [], done: [] })
    assert.equal(b.candidates(at, ['A'])[0].holds, true, 'the lying length was ignored, the earlier state kept')
  })
})
