/** Cluster admission: cluster key (Noise prologue) and allow-list refuse strangers before any protocol runs; identity persists. */
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { clusterPrologue, readClusterKey, writeClusterKey } from '../../src/p2p/admission.ts'
import { AdmissionConfigError } from '../../src/p2p/errors.ts'
import { loadOrCreateIdentity } from '../../src/p2p/identity.ts'
import { startPeer, stopPeers, type TestPeer } from './helpers.ts'

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-admission-'))
})
after(() => rm(dir, { recursive: true, force: true }))

describe('cluster key (Noise prologue)', () => {
  let keyA: Uint8Array
  let keyB: Uint8Array
  before(async () => {
    await writeClusterKey(join(dir, 'a.key'))
    await writeClusterKey(join(dir, 'b.key'))
    keyA = await readClusterKey(join(dir, 'a.key'))
    keyB = await readClusterKey(join(dir, 'b.key'))
  })

  it('writes a swarm key file with mode 0600 and rejects malformed ones', async () => {
    assert.equal((await stat(join(dir, 'a.key'))).mode & 0o777, 0o600)
    assert.match(await readFile(join(dir, 'a.key'), 'utf8'), /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/)
    await writeFile(join(dir, 'bad.key'), '/key/swarm/psk/1.0.0/\n/base16/\nabc\n')
    await assert.rejects(readClusterKey(join(dir, 'bad.key')), AdmissionConfigError)
  })

  it('derives the prologue from the key, not the file bytes; different keys give different prologues', async () => {
    // A key file written by pnet's generateKey (the earlier admission) or another tool: CRLF, upper-case hex, newline.
    const hex = Buffer.from(keyA).toString('latin1').trim().split('\n').at(-1)!
    await writeFile(join(dir, 'crlf.key'), `/key/swarm/psk/1.0.0/\r\n/base16/\r\n${hex.toUpperCase()}\n`)
    const same = await readClusterKey(join(dir, 'crlf.key'))
    assert.deepEqual(clusterPrologue(same), clusterPrologue(keyA))
    assert.notDeepEqual(clusterPrologue(keyB), clusterPrologue(keyA))
    assert.equal(clusterPrologue(keyA).byteLength, 32)
  })

  it('nodes with the same key connect; another key or none fails the handshake at once, and no handler runs', async () => {
    const a = await startPeer({ clusterKey: keyA })
    const b = await startPeer({ clusterKey: keyA, bootstrap: a.addrs() })
    const stranger = await startPeer({ clusterKey: keyB })
    const open = await startPeer() // no key at all
    try {
      const { buildId } = a.provider.addBuild('memfile', 1, 1024)
      assert.equal((await b.client.getHeader(a.peerId, buildId, 'memfile')).status, 'OK')
      const calls = a.provider.calls
      // The prologues differ, so the first handshake AEAD check fails: the dial is refused, not timed out.
      for (const outsider of [stranger, open]) {
        // A deadline far beyond any handshake: if it fired, the dial hung instead of being refused.
        const deadline = AbortSignal.timeout(120_000)
        await assert.rejects(outsider.node.dial(a.addrs()[0], deadline))
        assert.equal(deadline.aborted, false, 'refused by the handshake, not by the dial deadline')
      }
      // And the other way round: a keyed node dialling an unkeyed one refuses it too.
      await assert.rejects(a.node.dial(open.addrs()[0], AbortSignal.timeout(10_000)))
      await assert.rejects(stranger.client.getHeader(a.peerId, buildId, 'memfile', { timeoutMs: 500 }), { code: 'ERR_PEER_STREAM' })
      assert.equal(a.provider.calls, calls, 'the provider was asked by a stranger')
      assert.equal(open.provider.calls, 0)
      assert.ok(!a.node.isConnected(stranger.peerId) && !a.node.isConnected(open.peerId))
      assert.ok(!stranger.node.isConnected(a.peerId) && !open.node.isConnected(a.peerId))
      assert.deepEqual(a.node.connectedPeers(), [b.peerId])
    } finally {
      await stopPeers(a, b, stranger, open)
    }
  })
})

describe('allow-list of peer ids', () => {
  let a: TestPeer
  let friend: TestPeer
  let stranger: TestPeer

  before(async () => {
    friend = await startPeer()
    stranger = await startPeer()
    a = await startPeer({ allowPeers: [friend.peerId] })
  })
  after(() => stopPeers(a, friend, stranger))

  it('admits a listed peer and refuses an unlisted one after the handshake, before any stream', async () => {
    const { buildId } = a.provider.addBuild('memfile', 1, 1024)
    await friend.node.dial(a.addrs()[0])
    assert.equal((await friend.client.getHeader(a.peerId, buildId, 'memfile')).status, 'OK')
    const calls = a.provider.calls
    // The stranger's side may see its handshake finish before A drops the connection (Noise negotiates
    // the muxer inside the handshake), so only A's view and the request's fate are asserted.
    await stranger.node.dial(a.addrs()[0], AbortSignal.timeout(1000)).catch(() => {})
    // A drops the connection before any protocol runs: the stream fails to open, or (if the stranger
    // opened it first) no byte ever comes back.
    await assert.rejects(stranger.client.getHeader(a.peerId, buildId, 'memfile', { timeoutMs: 500 }), (err: Error & { code?: string }) => {
      assert.ok(err.code === 'ERR_PEER_STREAM' || err.code === 'ERR_PEER_STALL', String(err))
      return true
    })
    assert.equal(a.provider.calls, calls)
    assert.ok(!a.node.isConnected(stranger.peerId))
  })

  it('refuses to dial an unlisted peer', async () => {
    await assert.rejects(a.node.dial(stranger.addrs()[0], AbortSignal.timeout(500)))
  })

  it('rejects an allow-list entry that is not a peer id', async () => {
    await assert.rejects(startPeer({ allowPeers: ['not-a-peer-id'] }), AdmissionConfigError)
  })

  it('regression: a peer refused at start left its snapswarm-p2p-* temp dir behind (one per test run)', async () => {
    // os.tmpdir() reads TMPDIR on each call: point it at an empty directory for this start only.
    const tmp = join(dir, 'tmp')
    await mkdir(tmp)
    const saved = process.env.TMPDIR
    process.env.TMPDIR = tmp
    try {
      await assert.rejects(startPeer({ allowPeers: ['not-a-peer-id'] }), AdmissionConfigError)
    } finally {
      if (saved === undefined) delete process.env.TMPDIR
      else process.env.TMPDIR = saved
    }
    assert.deepEqual(await readdir(tmp), [], 'the failed start removed the directory it made')
  })
})

describe('identity', () => {
  it('is created once with mode 0600 and reloaded with the same peer id', async () => {
    const dataDir = join(dir, 'node')
    const first = await loadOrCreateIdentity(dataDir)
    assert.equal((await stat(join(dataDir, 'peer.key'))).mode & 0o777, 0o600)
    const again = await loadOrCreateIdentity(dataDir)
    assert.ok(first.equals(again))
    const racing = await Promise.all([1, 2, 3].map(() => loadOrCreateIdentity(join(dir, 'race'))))
    assert.ok(racing.every((k) => k.equals(racing[0])), 'concurrent first starts must agree on one key')
  })
})
