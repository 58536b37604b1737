/**
 * A Noise crypto backend on node:crypto (OpenSSL) throughout, plugged in with
 * `noise({ crypto: nodeNoiseCrypto })`. Wire-identical to the library's default (same primitives:
 * X25519, ChaCha20-Poly1305, SHA-256, HKDF-SHA256 per the Noise spec), so nodes with either backend
 * interoperate (test/p2p/noise-crypto.test.ts).
 *
 * Why: the default switches to a WebAssembly AEAD below 1200 bytes, derives keys with @noble (pure JS),
 * and concatenates ciphertext and tag into a fresh buffer for every 64 KiB Noise message. Here every
 * message is sealed by OpenSSL and handed on as [ciphertext, tag] without that copy; decryption
 * accepts a fragmented ciphertext (a Uint8ArrayList of TCP chunks) without joining it first.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
} from 'node:crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { Uint8ArrayList } from 'uint8arraylist'

/** noise's own uint8arraylist major (2.x): same runtime shape as ours (3.x), a different declared type. */
type NoiseList = Exclude<Parameters<ICryptoInterface['hashSHA256']>[0], Uint8Array>

const TAG = 16
// DER framing of raw X25519 keys, so OpenSSL takes and returns the 32 raw bytes Noise works with.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')

/**
 * Importing a raw key costs ~10 µs per createCipheriv (more than sealing 8 KiB). A Noise session
 * passes the same key array for every message, so its KeyObject is made once and found by identity;
 * the WeakMap lets it go with the session.
 */
const keyObjects = new WeakMap<Uint8Array, KeyObject>()

function secretKey(k: Uint8Array): KeyObject {
  let key = keyObjects.get(k)
  if (!key) {
    key = createSecretKey(k)
    keyObjects.set(k, key)
  }
  return key
}

function flat(data: Uint8Array | NoiseList): Uint8Array {
  return data instanceof Uint8Array ? data : data.subarray()
}

function x25519PrivateKey(raw: Uint8Array) {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' })
}

function x25519PublicKey(raw: Uint8Array) {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
}

function rawPublic(spki: Buffer): Uint8Array {
  return spki.subarray(SPKI_PREFIX.byteLength)
}

export const nodeNoiseCrypto: ICryptoInterface = {
  hashSHA256(data) {
    const h = createHash('sha256')
    if (data instanceof Uint8Array) return h.update(data).digest()
    for (const buf of data) h.update(buf)
    return h.digest()
  },

  // Noise's HKDF(ck, ikm) with three outputs is RFC 5869 HKDF-SHA256, salt = ck, empty info, 96 bytes.
  getHKDF(ck, ikm) {
    const okm = new Uint8Array(hkdfSync('sha256', ikm, ck, new Uint8Array(0), 96))
    return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)]
  },

  generateX25519KeyPair() {
    const { publicKey, privateKey } = generateKeyPairSync('x25519', {
      publicKeyEncoding: { type: 'spki', format: 'der' },
      privateKeyEncoding: { type: 'pkcs8', format: 'der' },
    })
    return { publicKey: rawPublic(publicKey), privateKey: privateKey.subarray(PKCS8_PREFIX.byteLength) }
  },

  generateX25519KeyPairFromSeed(seed) {
    const publicKey = createPublicKey(x25519PrivateKey(seed)).export({ type: 'spki', format: 'der' })
    return { publicKey: rawPublic(publicKey), privateKey: seed }
  },

  generateX25519SharedKey(privateKey, publicKey) {
    return diffieHellman({ privateKey: x25519PrivateKey(flat(privateKey)), publicKey: x25519PublicKey(flat(publicKey)) })
  },

  chaCha20Poly1305Encrypt(plaintext, nonce, ad, k) {
    const cipher = createCipheriv('chacha20-poly1305', secretKey(k), nonce, { authTagLength: TAG })
    cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
    const out = new Uint8ArrayList()
    if (plaintext instanceof Uint8Array) out.append(cipher.update(plaintext))
    else for (const buf of plaintext) out.append(cipher.update(buf))
    cipher.final() // a stream cipher: final() emits nothing, it only computes the tag
    out.append(cipher.getAuthTag())
    return out as unknown as NoiseList
  },

  chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k) {
    const textLength = ciphertext.byteLength - TAG
    const decipher = createDecipheriv('chacha20-poly1305', secretKey(k), nonce, { authTagLength: TAG })
    decipher.setAAD(ad, { plaintextLength: textLength })
    decipher.setAuthTag(ciphertext.subarray(textLength))
    if (ciphertext instanceof Uint8Array) {
      const out = decipher.update(ciphertext.subarray(0, textLength))
      decipher.final() // throws if the tag does not verify: the plaintext above is then discarded
      return out
    }
    const out = new Uint8ArrayList()
    for (const buf of ciphertext.sublist(0, textLength)) out.append(decipher.update(buf))
    decipher.final()
    return out as unknown as NoiseList
  },
}
