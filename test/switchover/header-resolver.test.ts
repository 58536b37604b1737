/**
 * Header lookup from peers (review item: peers were asked one after another, so a silent first peer
 * cost a whole stall timeout). Real peers on 127.0.0.1, the real client, directory, board and fs
 * object storage; only the content each peer serves is in memory.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { FrameTable } from '../../src/format/frame-table.ts'
import { encodeHeader, type Header } from '../../src/format/header.ts'
import { singleLayerHeader } from '../../src/format/mapping.ts'
import type { BuildId } from '../../src/format/types.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { createRegistry } from '../../src/obs/metrics.ts'
import { BuildStatusBoard } from '../../src/cluster/build-status.ts'
import { BuildNotFoundError, HeaderResolver } from '../../src/switchover/header-resolver.ts'
import { LocalBuilds } from '../../src/origin/local-builds.ts'
import { BuildUnavailableError, UploadFailedError } from '../../src/switchover/resumed-file.ts'
import { headerObjectName } from '../../src/format/layout.ts'
import { FsStore } from '../../src/storage/fs-store.ts'
import { newId } from '../read/helpers.ts'
import { startPeer, stopPeers, type TestPeer, waitFor } from '../p2p/helpers.ts'

/**
 * Far above what the test allows a lookup: asking peers one after another would wait for this. The
 * test's deadlines sit at half of it, so they are only hit by a lookup that waits for the stall.
 */
const STALL_MS = 60_000
const HEDGE_MS = 100

function header(id: BuildId, incomplete: boolean): Header {
  const info = { buildId: id, fileSize: 8192, sha256: new Uint8Array(randomBytes(32)), frames: FrameTable.fromSizes('zstd', [{ sizeU: 8192, sizeC: 120 }]) }
  return singleLayerHeader({ buildId: id, blockSize: 4096, info, incomplete })
}

const serve = (p: TestPeer, id: BuildId, bytes: Uint8Array) => p.provider.headers.set(`${id}/memfile`, { header: bytes, pending: true })

let silent: TestPeer
let good: TestPeer
let odd: TestPeer
let reader: TestPeer
let store: FsStore
let storeDir: string
const registry = createRegistry()
/** While `silence` is on, the silent peer answers nothing until the tests end (released in `after`). */
let release: () => void
let silence = false
let silentAsked = 0

before(async () => {
  // Its server must not give up on its own provider before the reader would (the default stall is 2 s).
  silent = await startPeer({ server: { stallMs: STALL_MS, timeoutMs: 2 * STALL_MS } })
  const gate = new Promise<void>((r) => {
    release = r
  })
  silent.provider.getHeader = async () => {
    silentAsked++
    if (silence) await gate
    return { status: 'NOT_AVAILABLE' }
  }
  good = await startPeer()
  odd = await startPeer()
  reader = await startPeer({ bootstrap: [...silent.addrs(), ...good.addrs(), ...odd.addrs()], client: { stallMs: STALL_MS, timeoutMs: 2 * STALL_MS }, registry })
  storeDir = await mkdtemp(join(tmpdir(), 'snapswarm-resolver-'))
  store = await FsStore.open(storeDir)
})

after(async () => {
  release()
  await store.close()
  await stopPeers(silent, good, odd, reader)
  await rm(storeDir, { recursive: true, force: true })
})

function resolver(board = new BuildStatusBoard()): HeaderResolver {
  return new HeaderResolver({ store, builds: new LocalBuilds(reader.dataDir), board, peer: reader, pollMs: 2000, hedgeMs: HEDGE_MS, log: silentLogger })
}

async function headerRequests(outcome: string): Promise<number> {
  const m = await registry.getSingleMetric('snapswarm_peer_requests_total')!.get()
  return m.values.filter((v) => v.labels.protocol === 'header' && v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0)
}

test('the first peer (announcing the build) is silent: the lookup completes from another peer within the hedge delay, the silent request is aborted', async () => {
  const id = newId()
  serve(good, id, encodeHeader(header(id, true)))
  // The silent peer announces the build, so it is the first candidate; the good one is only connected.
  silent.announcer.announce({ buildId: id, state: 'pending', memfileSize: 8192, rootfsSize: 0 })
  await waitFor(() => reader.directory.peersFor(id).length === 1, 3000, 'the announcement')
  const errorsBefore = await headerRequests('error')
  const askedBefore = silentAsked
  const board = new BuildStatusBoard()

  silence = true
  // A silent first peer must cost the hedge delay (HEDGE_MS), not its stall timeout: a lookup that
  // waited for the stall would run into this deadline first and reject.
  const h = await resolver(board).initial(id, 'memfile', AbortSignal.timeout(STALL_MS / 2))
  silence = false

  assert.equal(h.buildId, id)
  assert.equal(h.incomplete, true)
  assert.equal(silentAsked, askedBefore + 1, 'the silent peer was asked first')
  assert.equal(board.get(id), 'pending')
  assert.deepEqual(board.holdersOf(id), [good.peerId], 'the peer that served the header serves the frames')
  // The loser's request ends now (aborted), not when its stall timeout fires.
  const end = Date.now() + STALL_MS / 2
  while ((await headerRequests('error')) < errorsBefore + 1) {
    assert.ok(Date.now() < end, 'the silent peer request was not aborted (it would only end at its stall timeout)')
    await new Promise((r) => setTimeout(r, 20))
  }
  silent.announcer.withdraw(id)
})

test('every answer is still validated: undecodable, another build, no pending flag are skipped and reported', async () => {
  const id = newId()
  const other = newId()
  serve(good, id, encodeHeader(header(id, false))) // a final header: never taken from a peer
  serve(odd, id, encodeHeader(header(other, true))) // a pending header of another build
  await assert.rejects(resolver().initial(id, 'memfile'), (err: Error) => {
    assert.ok(err instanceof BuildUnavailableError, err.message)
    assert.match(err.message, /another build or without the pending flag.*another build or without the pending flag/)
    return true
  })
  serve(odd, id, new Uint8Array(randomBytes(200)))
  await assert.rejects(resolver().initial(id, 'memfile'), /undecodable header/)

  // A valid answer that comes later than invalid ones still wins.
  serve(good, id, encodeHeader(header(id, true)))
  const h = await resolver().initial(id, 'memfile')
  assert.equal(h.buildId, id)
  assert.equal(h.incomplete, true)
})

test('UPLOAD_FAILED is a clear error at once; USE_STORAGE loads the final header from storage', async () => {
  const failed = newId()
  good.provider.statusOf.set(failed, 'UPLOAD_FAILED')
  const board = new BuildStatusBoard()
  await assert.rejects(resolver(board).initial(failed, 'memfile', undefined, 5000), UploadFailedError)
  assert.equal(board.get(failed), 'failed')

  const done = newId()
  good.provider.statusOf.set(done, 'USE_STORAGE')
  odd.provider.headers.set(`${done}/memfile`, { header: encodeHeader(header(done, true)), pending: true })
  // The peer with the pending header answers later than the one that says the upload finished.
  const slowOdd = odd.provider.getHeader.bind(odd.provider)
  odd.provider.getHeader = async (...args) => {
    await new Promise((r) => setTimeout(r, 300))
    return slowOdd(...args)
  }
  const final = encodeHeader(header(done, false))
  // The final header lands in storage only after the peers were asked: the resolver polls for it.
  const stored = new Promise((r) => setTimeout(r, 150)).then(() => store.put(headerObjectName(done, 'memfile'), final))
  try {
    const h = await resolver(board).initial(done, 'memfile')
    await stored
    assert.equal(h.incomplete, false, 'the final header, from storage')
    assert.equal(h.buildId, done)
    assert.equal(board.get(done), 'uploaded')
  } finally {
    odd.provider.getHeader = slowOdd
  }
})

/** The resolver's store, whose header reads wait until `open()` is called: a storage round trip that has not answered yet. */
function gatedStore(): { store: FsStore; open: () => void; asked: () => number } {
  let open!: () => void
  const gate = new Promise<void>((r) => {
    open = r
  })
  let asked = 0
  const gated = Object.create(store) as FsStore
  gated.get = async (...args: Parameters<FsStore['get']>) => {
    asked++
    await gate
    return store.get(...args)
  }
  return { store: gated, open, asked: () => asked }
}

test('regression: a resume from a pending peer waited for storage to say "not found" before asking the peer; both are asked at once', async () => {
  const id = newId()
  serve(good, id, encodeHeader(header(id, true)))
  good.announcer.announce({ buildId: id, state: 'pending', memfileSize: 8192, rootfsSize: 0 })
  await waitFor(() => reader.directory.peersFor(id).length === 1, 3000, 'the announcement')
  const slow = gatedStore()
  try {
    const board = new BuildStatusBoard()
    const r = new HeaderResolver({ store: slow.store, builds: new LocalBuilds(reader.dataDir), board, peer: reader, pollMs: 2000, hedgeMs: HEDGE_MS, log: silentLogger })
    // Storage never answers while the lookup runs: asked in turn, the lookup would wait for it forever.
    const h = await r.initial(id, 'memfile', AbortSignal.timeout(STALL_MS / 2))
    assert.equal(h.buildId, id)
    assert.equal(h.incomplete, true, 'the pending header, from the peer')
    assert.equal(slow.asked(), 1, 'storage was asked too')
    assert.deepEqual(board.holdersOf(id), [good.peerId])
  } finally {
    slow.open()
    good.announcer.withdraw(id)
  }
})

test('asked at once, storage that holds the final header wins over a peer that has not answered; the peer request is aborted', async () => {
  const id = newId()
  let releasePeer!: () => void
  const peerGate = new Promise<void>((r) => {
    releasePeer = r
  })
  const original = good.provider.getHeader.bind(good.provider)
  good.provider.getHeader = async (...args) => {
    await peerGate
    return original(...args)
  }
  serve(good, id, encodeHeader(header(id, true)))
  await store.put(headerObjectName(id, 'memfile'), encodeHeader(header(id, false)))
  good.announcer.announce({ buildId: id, state: 'pending', memfileSize: 8192, rootfsSize: 0 })
  try {
    await waitFor(() => reader.directory.peersFor(id).length === 1, 3000, 'the announcement')
    const errorsBefore = await headerRequests('error')
    const board = new BuildStatusBoard()
    const h = await resolver(board).initial(id, 'memfile', AbortSignal.timeout(STALL_MS / 2))
    assert.equal(h.incomplete, false, 'the final header, from storage')
    assert.equal(board.get(id), undefined, 'the unanswered peer lookup set nothing on the board')
    const end = Date.now() + STALL_MS / 2
    while ((await headerRequests('error')) < errorsBefore + 1) {
      assert.ok(Date.now() < end, 'the peer request was not aborted')
      await new Promise((r) => setTimeout(r, 20))
    }
  } finally {
    releasePeer()
    good.provider.getHeader = original
    good.announcer.withdraw(id)
  }
})

test('regression: an unknown build was retried for the whole visibility wait; every peer saying NOT_AVAILABLE is ERR_NOT_FOUND at once, a BUSY peer (origin still framing) keeps it waiting', async () => {
  const id = newId()
  const asked = () => good.provider.calls + odd.provider.calls
  const before = asked()
  // A wait of an hour: a lookup that retried instead of answering would hit the test timeout.
  await assert.rejects(resolver().initial(id, 'memfile', undefined, 3_600_000), (err: Error) => {
    assert.ok(err instanceof BuildNotFoundError, err.message)
    assert.equal((err as BuildNotFoundError).code, 'ERR_NOT_FOUND')
    assert.match(err.message, new RegExp(`build ${id} is not in storage and no peer has it`))
    return true
  })
  assert.equal(asked(), before + 2, 'each peer was asked once: no retry')

  // Another build whose origin is still framing it answers BUSY: the lookup retries within its wait
  // (here 1 s) and then says it is unavailable, not that it does not exist.
  const framing = newId()
  odd.provider.statusOf.set(framing, 'BUSY')
  const busyBefore = odd.provider.calls
  await assert.rejects(resolver().initial(framing, 'memfile', undefined, 1000), BuildUnavailableError)
  assert.ok(odd.provider.calls >= busyBefore + 2, 'asked again while it might still appear')

  // A stored build without the asked file kind: not found at once, naming the kind it has.
  const memOnly = newId()
  await store.put(headerObjectName(memOnly, 'memfile'), encodeHeader(header(memOnly, false)))
  await assert.rejects(resolver().initial(memOnly, 'rootfs', undefined, 3_600_000), new RegExp(`build ${memOnly} has no rootfs \\(it has: memfile\\)`))
})

test('regression: a build seen announced pending whose origin is gone or restarting was ERR_NOT_FOUND at once; it stays "unavailable" and is asked again', async () => {
  const id = newId()
  // This node saw the build announced pending; the origin's announcement has since expired and every
  // peer says NOT_AVAILABLE (the origin restarting, or dead while its upload may still land).
  const board = new BuildStatusBoard()
  board.set(id, 'pending')
  const before = good.provider.calls + odd.provider.calls
  await assert.rejects(resolver(board).initial(id, 'memfile', undefined, 1000), (err: Error) => {
    assert.ok(err instanceof BuildUnavailableError, `${err.name}: ${err.message}`)
    return true
  })
  assert.ok(good.provider.calls + odd.provider.calls >= before + 4, 'asked again while it might still appear')
})

test('regression: a child pause failed when its parent was momentarily known to nobody (origin restarting); a lookup told the build must exist keeps asking', async () => {
  const id = newId()
  const before = good.provider.calls + odd.provider.calls
  await assert.rejects(resolver().initial(id, 'memfile', undefined, 1000, { mustExist: true }), (err: Error) => {
    assert.ok(err instanceof BuildNotFoundError, `${err.name}: ${err.message}`)
    return true
  })
  assert.ok(good.provider.calls + odd.provider.calls >= before + 4, 'asked again within the wait instead of failing at once')
})

test('a peer newly announcing a pending build gets a header stream opened at once; the lookup that follows uses it', async () => {
  const id = newId()
  serve(good, id, encodeHeader(header(id, true)))
  const r = resolver()
  const stop = r.warmOnAnnouncements()
  try {
    const taken = reader.client.warmStats.taken
    good.announcer.announce({ buildId: id, state: 'pending', memfileSize: 8192, rootfsSize: 0 })
    await waitFor(() => reader.directory.peersFor(id).length === 1, 3000, 'the announcement')
    const h = await r.initial(id, 'memfile', AbortSignal.timeout(STALL_MS / 2))
    assert.equal(h.buildId, id)
    // The header request took the stream opened on the announcement (the frames stream opened beside it waits for a frames request).
    assert.equal(reader.client.warmStats.taken, taken + 1)
  } finally {
    stop()
    good.announcer.withdraw(id)
  }
})
