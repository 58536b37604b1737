/** Cluster admission: pre-shared key and allow-list refuse strangers before any protocol runs; identity persists. */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { multiaddrConnectionPair } from '@libp2p/utils'
import { clusterKeyProtector, readClusterKey, writeClusterKey } from '../../src/p2p/admission.ts'
import { AdmissionConfigError } from '../../src/p2p/errors.ts'
import { loadOrCreateIdentity } from '../../src/p2p/identity.ts'
import { startPeer, stopPeers, type TestPeer } from './helpers.ts'

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapswarm-admission-'))
})
after(() => rm(dir, { recursive: true, force: true }))

describe('pre-shared cluster key', () => {
  let keyA: Uint8Array
  let keyB: Uint8Array
  before(async () => {
    await writeClusterKey(join(dir, 'a.key'))
    await writeClusterKey(join(dir, 'b.key'))
    keyA = await readClusterKey(join(dir, 'a.key'))
    keyB = await readClusterKey(join(dir, 'b.key'))
  })

  it('writes a pnet swarm key file with mode 0600 and rejects malformed ones', async () => {
    assert.equal((await stat(join(dir, 'a.key'))).mode & 0o777, 0o600)
    assert.match((await readFile(join(dir, 'a.key'), 'utf8')).split('\n')[0], /^\/key\/swarm\/psk\/1\.0\.0\/$/)
    await writeFile(join(dir, 'bad.key'), '/key/swarm/psk/1.0.0/\n/base16/\nabc\n')
    await assert.rejects(readClusterKey(join(dir, 'bad.key')), AdmissionConfigError)
  })

  it('nodes with the same key connect; a node with another key is refused and no handler runs', async () => {
    const a = await startPeer({ clusterKey: keyA })
    const b = await startPeer({ clusterKey: keyA, bootstrap: a.addrs() })
    const stranger = await startPeer({ clusterKey: keyB })
    const open = await startPeer() // no key at all
    try {
      const { buildId } = a.provider.addBuild('memfile', 1, 1024)
      assert.equal((await b.client.getHeader(a.peerId, buildId, 'memfile')).status, 'OK')
      const calls = a.provider.calls
      // Without the key the Noise handshake reads noise and never completes: the dial fails by its deadline.
      await assert.rejects(stranger.node.dial(a.addrs()[0], AbortSignal.timeout(500)))
      await assert.rejects(open.node.dial(a.addrs()[0], AbortSignal.timeout(500)))
      await assert.rejects(stranger.client.getHeader(a.peerId, buildId, 'memfile', { timeoutMs: 500 }))
      assert.equal(a.provider.calls, calls, 'the provider was asked by a stranger')
      assert.ok(!a.node.isConnected(stranger.peerId) && !a.node.isConnected(open.peerId))
    } finally {
      await stopPeers(a, b, stranger, open)
    }
  })

  it('regression: a keyed connection survives a send of more than 64 MB (xsalsa20 WebAssembly cap)', async () => {
    // pnet XORed everything queued in ONE call into xsalsa20's WebAssembly memory, capped at 64 MB: after
    // TCP backpressure with several large responses in flight the call threw and every stream on the
    // connection ended short (bench/p2p-throughput.ts). An 80 MB send reproduces it deterministically.
    const [outbound, inbound] = multiaddrConnectionPair()
    const protector = clusterKeyProtector(keyA)()
    const [a, b] = await Promise.all([protector.protect(outbound), protector.protect(inbound)])
    const size = 64 * 1024 * 1024
    let got = 0
    const received = new Promise<void>((resolve, reject) => {
      b.addEventListener('message', (e) => {
        got += e.data.byteLength
        if (got === size) resolve()
      })
      b.addEventListener('close', (e) => reject(e.error ?? new Error('closed early')))
    })
    a.send(new Uint8Array(size))
    await received
    for (const s of [a, b]) s.abort(new Error('test done'))
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
    await assert.rejects(stranger.client.getHeader(a.peerId, buildId, 'memfile', { timeoutMs: 500 }))
    assert.equal(a.provider.calls, calls)
    assert.ok(!a.node.isConnected(stranger.peerId))
  })

  it('refuses to dial an unlisted peer', async () => {
    await assert.rejects(a.node.dial(stranger.addrs()[0], AbortSignal.timeout(500)))
  })

  it('rejects an allow-list entry that is not a peer id', async () => {
    await assert.rejects(startPeer({ allowPeers: ['not-a-peer-id'] }), AdmissionConfigError)
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
