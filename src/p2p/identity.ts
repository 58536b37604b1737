/**
 * The node's libp2p identity: an Ed25519 private key, protobuf-marshalled (the format every libp2p
 * implementation reads), kept in the data dir so the peer id survives restarts and allow-lists stay
 * valid. Created once with mode 0600; a key readable by others is reported, since whoever reads it can
 * impersonate the node inside the cluster.
 */
import { randomBytes } from 'node:crypto'
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { FormatError } from '../errors.ts'
import type { Logger } from '../obs/log.ts'
import { IDENTITY_FILE } from './constants.ts'

/** Load `dataDir/peer.key`, or create it. Concurrent first starts agree on one key (link, not rename). */
export async function loadOrCreateIdentity(dataDir: string, log?: Logger): Promise<PrivateKey> {
  const path = join(dataDir, IDENTITY_FILE)
  const existing = await readKey(path, log)
  if (existing) return existing
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const key = await generateKeyPair('Ed25519')
  const tmp = `${path}.tmp.${randomBytes(6).toString('hex')}`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' })
  try {
    // link fails with EEXIST if another process created the key first: theirs wins, we read it back.
    await link(tmp, path)
    return key
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return (await readKey(path, log)) as PrivateKey
  } finally {
    await unlink(tmp)
  }
}

async function readKey(path: string, log?: Logger): Promise<PrivateKey | undefined> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const mode = (await stat(path)).mode & 0o777
  if (mode & 0o077) {
    log?.warn({ path, mode: mode.toString(8) }, 'identity key readable by group/others; restricting to 0600')
    await chmod(path, 0o600)
  }
  try {
    return privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new FormatError(`${path}: not a protobuf-marshalled libp2p private key (${bytes.byteLength} bytes)`, { cause: err })
  }
}
