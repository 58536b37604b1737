/** The node:crypto Noise backend is interchangeable with the library's own: same bytes, same handshakes. */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { pureJsCrypto } from '@chainsafe/libp2p-noise'
import { Uint8ArrayList } from 'uint8arraylist'
import { nodeNoiseCrypto as fast } from '../../src/p2p/noise-crypto.ts'
import { equalBytes, startPeer, stopPeers } from './helpers.ts'

const flat = (x: Uint8Array | { subarray(): Uint8Array }): Uint8Array => (x instanceof Uint8Array ? x : x.subarray())

describe('nodeNoiseCrypto primitives match the reference implementation', () => {
  it('SHA-256 and HKDF', () => {
    const data = randomBytes(1000)
    assert.ok(equalBytes(fast.hashSHA256(data), pureJsCrypto.hashSHA256(data)))
    assert.ok(equalBytes(fast.hashSHA256(new Uint8ArrayList(data.subarray(0, 10), data.subarray(10)) as never), pureJsCrypto.hashSHA256(data)))
    const [ck, ikm] = [randomBytes(32), randomBytes(32)]
    const ours = fast.getHKDF(ck, ikm)
    const ref = pureJsCrypto.getHKDF(ck, ikm)
    for (let i = 0; i < 3; i++) assert.ok(equalBytes(ours[i], ref[i]), `okm ${i}`)
  })

  it('X25519 agreement across implementations', () => {
    const a = fast.generateX25519KeyPair()
    const b = pureJsCrypto.generateX25519KeyPair()
    assert.ok(equalBytes(fast.generateX25519SharedKey(a.privateKey, b.publicKey), pureJsCrypto.generateX25519SharedKey(b.privateKey, a.publicKey)))
    const seed = randomBytes(32)
    assert.ok(equalBytes(fast.generateX25519KeyPairFromSeed(seed).publicKey, pureJsCrypto.generateX25519KeyPairFromSeed(seed).publicKey))
  })

  it('ChaCha20-Poly1305 seals and opens the same bytes, fragmented or not, and rejects a forged tag', () => {
    const [k, nonce, ad] = [randomBytes(32), randomBytes(12), randomBytes(32)]
    for (const size of [0, 100, 1199, 1200, 65519]) {
      const text = randomBytes(size)
      const sealed = flat(fast.chaCha20Poly1305Encrypt(text, nonce, ad, k))
      assert.ok(equalBytes(sealed, flat(pureJsCrypto.chaCha20Poly1305Encrypt(text, nonce, ad, k))), `seal ${size}`)
      assert.ok(equalBytes(flat(fast.chaCha20Poly1305Decrypt(sealed, nonce, ad, k)), text), `open ${size}`)
      const pieces = new Uint8ArrayList(sealed.subarray(0, size >> 1), sealed.subarray(size >> 1))
      assert.ok(equalBytes(flat(fast.chaCha20Poly1305Decrypt(pieces as never, nonce, ad, k)), text), `open fragmented ${size}`)
      const forged = Uint8Array.from(sealed)
      forged[forged.length - 1] ^= 1
      assert.throws(() => fast.chaCha20Poly1305Decrypt(forged, nonce, ad, k))
    }
  })
})

describe('nodes with different Noise backends', () => {
  it('complete the handshake and exchange frames both ways', async () => {
    const a = await startPeer({ noiseCrypto: 'default' })
    const b = await startPeer({ noiseCrypto: 'node', bootstrap: a.addrs() })
    try {
      const fromA = a.provider.addBuild('memfile', 4, 256 * 1024)
      const fromB = b.provider.addBuild('rootfs', 4, 1000)
      const ra = await b.client.getFrames(a.peerId, fromA.buildId, 'memfile', 'zstd', fromA.ranges)
      const rb = await a.client.getFrames(b.peerId, fromB.buildId, 'rootfs', 'zstd', fromB.ranges)
      assert.ok(ra.status === 'OK' && equalBytes(Buffer.concat(ra.frames), fromA.data))
      assert.ok(rb.status === 'OK' && equalBytes(Buffer.concat(rb.frames), fromB.data))
    } finally {
      await stopPeers(a, b)
    }
  })
})
