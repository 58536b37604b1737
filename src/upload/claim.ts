/**
 * One build id, one content: how exactly one writer wins a whole build in storage.
 *
 * Every object is written create-only (the store never replaces a name), but a build is several
 * objects (the data of each file, blobs, headers), and two writers racing object by object could each
 * win some: a mixed build that neither of them wrote. So a writer first creates, create-only, a small
 * claim object `{buildId}/snapswarm.claim` naming itself (a node's peer id, `push@host` for the CLI)
 * and the digest of the content it will write (per file: size, SHA-256 of the plain bytes, codec,
 * level, frame and block size; the parent; the blobs' SHA-256). One create of a name can succeed:
 *
 * - It created the claim: the build is its own, unless something is already stored under
 *   `{buildId}/` without a claim (a build stored by another system or an older version); then the
 *   claim is removed again and the write fails with ERR_BUILD_EXISTS, nothing else touched.
 * - The claim exists with the same writer and digest: its own earlier attempt (an origin restarted
 *   after kill -9, or a request of its own that landed before a retry). Everything under the prefix is
 *   its own; the same content with the same settings gives the same bytes, so an object found already
 *   stored is accepted if it matches (headers and blobs byte for byte, data objects by size).
 * - Any other claim (another writer, or other content): ERR_BUILD_EXISTS before anything is written.
 * - Success: headers last, then the claim is deleted, so a finished build holds exactly the objects
 *   readers know (e2b's layout); its stored objects keep any later writer out (first rule).
 * - Failure: every object under the prefix is deleted (all the writer's own), then the claim, which
 *   frees the id; if a delete fails the claim stays, and only the same writer and content can go on.
 *
 * The claim is JSON under a name that is no data object (`memfile`, `rootfs.ext4` + codec suffix),
 * no header (`*.header`) and no blob (`snapfile`, `metadata.json`): readers, which open known names,
 * never read it, and listing tools can tell it apart by name.
 */
import { createHash } from 'node:crypto'
import type { FileHandle } from 'node:fs/promises'
import { hostname } from 'node:os'
import type { CompressionSettings } from '../config/compression.ts'
import { LimitError, SnapswarmError } from '../errors.ts'
import { buildPrefix, claimObjectName } from '../format/layout.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import { dropZeroBlocks, HoleList } from '../framing/holes.ts'
import { NotFoundError, ObjectExistsError, type ObjectStore } from '../storage/store.ts'
import { readUpTo } from '../util/file-io.ts'

/** A claim is a few hundred bytes; anything larger is not one of ours. */
const MAX_CLAIM_BYTES = 4096
/** A claim that vanished between our failed create and our read (its owner gave up): try again. */
const CLAIM_ATTEMPTS = 3
/** Read size of scanSource. */
const SCAN_STEP = 1024 * 1024

/** The build id is taken in storage by another writer or another content; nothing of ours was written. */
export class BuildExistsError extends SnapswarmError {
  constructor(buildId: string, detail: string) {
    super('ERR_BUILD_EXISTS', `build ${buildId}: ${detail}`)
  }
}

/** Who writes a build and what: the claim's content. */
export interface BuildWriter {
  readonly writer: string
  readonly digest: string
}

export interface ClaimedFile {
  readonly kind: FileKind
  readonly size: number
  readonly sha256: Uint8Array
  readonly settings: Pick<CompressionSettings, 'codec' | 'level' | 'frameSize'>
  readonly blockSize: number
  /** Zero blocks of this size were left out as holes (named only when the file has some); undefined: none. */
  readonly zeroBlock?: number
}

/** The writer identity of `snapswarm push` on this host: a rerun after a crash may finish its upload. */
export function pushWriter(): string {
  return `push@${hostname()}`
}

/** Digest of everything that decides the stored bytes of a build (see the file comment). */
export function contentDigest(parent: BuildId | null | undefined, files: ClaimedFile[], blobs: { name: string; sha256: Uint8Array }[]): string {
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
  const canonical = {
    v: 1,
    parent: parent ?? null,
    files: files.map((f) => {
      const geometry = f.settings.codec === 'none' ? ['none'] : [f.settings.codec, f.settings.level, f.settings.frameSize]
      return [f.kind, f.size, hex(f.sha256), f.blockSize, ...geometry, ...(f.zeroBlock === undefined ? [] : [`holes:${f.zeroBlock}`])]
    }),
    blobs: blobs.map((b) => [b.name, hex(b.sha256)]),
  }
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex')
}

/**
 * SHA-256 of a whole file, read in ~1 MiB steps, and the bytes its framing will store: with
 * `zeroBlock`, zero blocks are counted out exactly as the framer drops them (the same HoleList rule),
 * so the data object's uncompressed size is known before its upload starts (object metadata).
 */
export async function scanSource(fh: FileHandle, zeroBlock: number | undefined, signal?: AbortSignal): Promise<{ sha256: Uint8Array; storedSize: number }> {
  const hash = createHash('sha256')
  const step = zeroBlock === undefined ? SCAN_STEP : Math.ceil(SCAN_STEP / zeroBlock) * zeroBlock
  const buf = Buffer.allocUnsafe(step)
  const holes = new HoleList()
  for (let pos = 0; ; ) {
    signal?.throwIfAborted()
    const bytesRead = await readUpTo(fh, buf, pos)
    if (bytesRead === 0) return { sha256: hash.digest(), storedSize: pos - holes.bytes }
    const chunk = buf.subarray(0, bytesRead)
    hash.update(chunk)
    if (zeroBlock !== undefined) dropZeroBlocks(chunk, pos, zeroBlock, holes, false)
    pos += bytesRead
  }
}


/**
 * Takes the build's claim, runs `write` (which writes every object of the build, headers last), then
 * drops the claim; on failure removes what is stored under the build and frees the claim. Throws
 * BuildExistsError, having written nothing, when the build belongs to another writer or content.
 */
export async function writeClaimedBuild<T>(store: ObjectStore, buildId: BuildId, claim: BuildWriter, signal: AbortSignal | undefined, write: () => Promise<T>): Promise<T> {
  await takeClaim(store, buildId, claim, signal)
  let out: T
  try {
    out = await write()
  } catch (err) {
    await releaseBuild(store, buildId)
    throw err
  }
  // The build is complete; a claim left behind by a failed delete is harmless (see the file comment).
  await store.delete(claimObjectName(buildId)).catch(() => {})
  return out
}

/** Creates the claim, or recognises our own; BuildExistsError otherwise. */
export async function takeClaim(store: ObjectStore, buildId: BuildId, claim: BuildWriter, signal?: AbortSignal): Promise<'created' | 'resumed'> {
  const name = claimObjectName(buildId)
  const body = Buffer.from(JSON.stringify({ writer: claim.writer, digest: claim.digest, created: new Date().toISOString() }))
  for (let attempt = 1; ; attempt++) {
    try {
      await store.put(name, body, { signal })
    } catch (err) {
      if (!(err instanceof ObjectExistsError)) throw err
      const found = await readClaim(store, buildId, signal)
      if (found === 'gone' && attempt < CLAIM_ATTEMPTS) continue
      if (found !== 'gone' && found !== 'unreadable' && found.writer === claim.writer && found.digest === claim.digest) return 'resumed'
      const who = typeof found === 'string' ? `a claim that is ${found}` : `${found.writer}'s claim for content ${found.digest.slice(0, 16)}…`
      throw new BuildExistsError(buildId, `expected to be its only writer (${claim.writer}, content ${claim.digest.slice(0, 16)}…), found ${who}`)
    }
    let others: string[]
    try {
      others = (await store.list(buildPrefix(buildId))).filter((n) => n !== name)
    } catch (err) {
      await store.delete(name).catch(() => {})
      throw err
    }
    if (others.length === 0) return 'created'
    await store.delete(name).catch(() => {})
    throw new BuildExistsError(buildId, `expected no stored objects, found ${others.length} (${others.slice(0, 3).join(', ')})`)
  }
}

async function readClaim(store: ObjectStore, buildId: BuildId, signal?: AbortSignal): Promise<BuildWriter | 'gone' | 'unreadable'> {
  let bytes: Uint8Array
  try {
    bytes = await store.get(claimObjectName(buildId), { maxBytes: MAX_CLAIM_BYTES, signal })
  } catch (err) {
    if (err instanceof NotFoundError) return 'gone'
    if (err instanceof LimitError) return 'unreadable'
    throw err
  }
  try {
    const c = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>
    if (typeof c.writer === 'string' && typeof c.digest === 'string') return { writer: c.writer, digest: c.digest }
  } catch {
    // not JSON: not a claim we can match
  }
  return 'unreadable'
}

/**
 * The failure path of the claim's owner: deletes every object stored under the build (all its own:
 * the claim rules out anyone else's), then the claim, which frees the id. If any delete fails the claim
 * stays, so no other writer can start on a prefix that still holds our objects.
 */
export async function releaseBuild(store: ObjectStore, buildId: BuildId): Promise<void> {
  const claim = claimObjectName(buildId)
  try {
    const names = (await store.list(buildPrefix(buildId))).filter((n) => n !== claim)
    const results = await Promise.allSettled(names.map((n) => store.delete(n)))
    if (results.some((r) => r.status === 'rejected')) return
    await store.delete(claim)
  } catch {
    // Best effort: storage that failed the upload may fail this too; the claim then stays ours.
  }
}

/**
 * Removes the claim of a build found complete in storage if `writer` holds it: what an owner that
 * died between its last header and dropping the claim left behind. Best effort.
 */
export async function dropClaimOf(store: ObjectStore, buildId: BuildId, writer: string): Promise<void> {
  try {
    const found = await readClaim(store, buildId)
    if (typeof found !== 'string' && found.writer === writer) await store.delete(claimObjectName(buildId))
  } catch {
    // A claim left on a complete build is harmless: readers never open it, writers are refused anyway.
  }
}

/**
 * A create-only put by the build's claim owner: an object already stored under the name is accepted
 * if it holds exactly these bytes (our own earlier attempt, or our request that landed before its
 * retry); other bytes are a BuildExistsError.
 */
export async function putBuildObject(store: ObjectStore, buildId: BuildId, name: string, data: Uint8Array, signal?: AbortSignal): Promise<void> {
  try {
    await store.put(name, data, { signal })
  } catch (err) {
    if (!(err instanceof ObjectExistsError)) throw err
    const stored = await store.get(name, { maxBytes: data.byteLength, signal }).catch((e) => {
      if (e instanceof LimitError) return null
      throw e
    })
    if (stored !== null && Buffer.from(stored).equals(Buffer.from(data))) return
    throw new BuildExistsError(buildId, `${name}: expected no object or these ${data.byteLength} bytes, found other bytes`)
  }
}

/**
 * After a create-only data upload failed with ObjectExistsError: the stored object is accepted as the
 * owner's own if it has the size this attempt wrote (same content and settings give the same bytes).
 */
export async function acceptStoredData(store: ObjectStore, buildId: BuildId, name: string, size: number, err: ObjectExistsError): Promise<void> {
  const st = await store.stat(name)
  if (st !== null && st.size === size) return
  throw new BuildExistsError(buildId, `${name}: expected no object or ${size} bytes, found ${st === null ? 'it gone' : `${st.size} bytes`} (${err.message})`)
}
