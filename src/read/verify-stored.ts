/**
 * `inspect --verify`: read every stored byte of every layer a stored build's header maps, and check it
 * against what the headers promise, naming the first failing frame or chunk of a layer.
 *
 *  - compressed layer (zstd, lz4): each frame of the table decodes to its end (codec checksum) to
 *    exactly its size; the layer's SHA-256 when the table covers the whole file;
 *  - raw layer with chunk digests (what raw builds are written as now): each chunk's SHA-256, then the
 *    whole file's SHA-256 when the digests cover the whole file;
 *  - raw layer without digests but with a whole-file SHA-256 (e2b's V4 header for uncompressed
 *    data): the whole object is hashed; every byte is checked, but lazy reads cannot check a chunk;
 *  - raw layer with no checksum at all (a legacy V3 build): nothing can be verified; only its size is
 *    checked, and the layer is reported `unverifiable` (the caller decides whether that fails).
 */
import { createHash } from 'node:crypto'
import { getCodec } from '../format/codec.ts'
import type { BuildInfo, Header } from '../format/header.ts'
import { hexDigest, sameDigest, sha256Of } from '../format/raw-digests.ts'
import { mappedEnds } from '../format/header-validate.ts'
import { resolveLayerInfo } from '../format/layer-info.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import type { ObjectStore } from '../storage/store.ts'
import { storageLayerLookup } from './open.ts'
import { dataObjectName } from '../format/layout.ts'

/** Raw layers without digests are hashed in steps of this size: bounded memory for any object size. */
const STEP = 16 * 1024 * 1024

export interface LayerReport {
  readonly buildId: BuildId
  readonly object: string
  readonly codec: string
  /** Frames or chunks checked one by one (0 when the layer has none). */
  readonly frames: number
  readonly bytes: number
  /** Whole-file SHA-256: `ok` checked, `unknown` not recorded, `partial-table` the header lists only part of the file. */
  readonly sha256: 'ok' | 'unknown' | 'partial-table'
  /** `unverifiable`: the header carries nothing to check this layer's bytes against. */
  readonly status: 'verified' | 'unverifiable'
  /** What was checked, in words. */
  readonly checked: string
}

export interface VerifyFailure {
  readonly buildId: BuildId
  readonly object: string
  readonly detail: string
}

export interface VerifyReport {
  readonly layers: LayerReport[]
  readonly failures: VerifyFailure[]
}

export async function verifyStoredHeader(store: ObjectStore, kind: FileKind, header: Header, signal?: AbortSignal): Promise<VerifyReport> {
  const layers: LayerReport[] = []
  const failures: VerifyFailure[] = []
  const lookup = storageLayerLookup(store)
  for (const [buildId, end] of mappedEnds(header)) {
    let info: BuildInfo | undefined
    let object = dataObjectName(buildId, kind, 'none')
    try {
      // The decision every read makes (layer-info.ts): verify passes only what a read can read.
      info = await resolveLayerInfo(header, buildId, (id) => lookup(id, kind))
      const codec = info?.frames.codec ?? 'none'
      object = dataObjectName(buildId, kind, codec)
      const layer = { buildId, object, codec }
      if (codec !== 'none') layers.push({ ...layer, ...(await verifyFrames(store, object, info!, signal)) })
      else if (info?.digests) layers.push({ ...layer, ...(await verifyChunks(store, object, info, signal)) })
      else layers.push({ ...layer, ...(await verifyRawWhole(store, object, info, end, signal)) })
    } catch (err) {
      failures.push({ buildId, object, detail: (err as Error).message })
    }
  }
  return { layers, failures }
}

type Checked = Omit<LayerReport, 'buildId' | 'object' | 'codec'>

/** Whole-file SHA-256 status after hashing `covered` contiguous bytes from 0 (NaN: gaps). */
function wholeSha(info: BuildInfo, covered: number, hash: ReturnType<typeof createHash>): LayerReport['sha256'] {
  const known = info.sha256.some((b) => b !== 0)
  if (!known) return 'unknown'
  if (covered !== info.fileSize) return 'partial-table'
  const found = hash.digest()
  if (!sameDigest(found, info.sha256)) {
    throw new Error(`SHA-256 of the whole data file: expected ${hexDigest(info.sha256)}, found ${hexDigest(found)}`)
  }
  return 'ok'
}

async function verifyFrames(store: ObjectStore, object: string, info: BuildInfo, signal?: AbortSignal): Promise<Checked> {
  const decoder = getCodec(info.frames.codec)
  const hash = createHash('sha256')
  let covered = 0
  let bytes = 0
  for (const f of info.frames.frames) {
    const stored = await store.getRange(object, f.startC, f.sizeC, signal)
    let plain: Uint8Array
    try {
      plain = await decoder.decompress(stored, f.sizeU)
    } catch (err) {
      throw new Error(`frame at uncompressed offset ${f.startU} (compressed ${f.startC}+${f.sizeC}): ${(err as Error).message}`)
    }
    if (f.startU !== covered) covered = Number.NaN // a gap: the table was trimmed
    hash.update(plain)
    covered += f.sizeU
    bytes += f.sizeU
  }
  const sha256 = wholeSha(info, covered, hash)
  const n = info.frames.frames.length
  return { frames: n, bytes, sha256, status: 'verified', checked: `${n} ${info.frames.codec} frames decoded with their checksums` }
}

async function verifyChunks(store: ObjectStore, object: string, info: BuildInfo, signal?: AbortSignal): Promise<Checked> {
  const digests = info.digests!
  await checkObjectSize(store, object, info.fileSize)
  const hash = createHash('sha256')
  let covered = 0
  let bytes = 0
  for (let p = 0; p < digests.count; p++) {
    const c = digests.chunk(p, info.fileSize)
    const plain = await store.getRange(object, c.startU, c.sizeU, signal)
    const found = sha256Of(plain)
    if (!sameDigest(found, c.sha256)) {
      throw new Error(`chunk ${c.index} at offset ${c.startU}+${c.sizeU}: SHA-256 expected ${hexDigest(c.sha256)}, found ${hexDigest(found)}`)
    }
    if (c.startU !== covered) covered = Number.NaN
    hash.update(plain)
    covered += c.sizeU
    bytes += c.sizeU
  }
  const sha256 = wholeSha(info, covered, hash)
  return { frames: digests.count, bytes, sha256, status: 'verified', checked: `${digests.count} raw chunks against their SHA-256 digests` }
}

/** A raw layer without digests: hashed whole if its header records a SHA-256, else unverifiable. */
async function verifyRawWhole(store: ObjectStore, object: string, info: BuildInfo | undefined, mappedEnd: number, signal?: AbortSignal): Promise<Checked> {
  const stat = await store.stat(object)
  if (!stat) throw new Error('data object missing')
  if (info === undefined || !info.sha256.some((b) => b !== 0)) {
    if (stat.size < mappedEnd) throw new Error(`expected at least ${mappedEnd} bytes (what the header maps), found ${stat.size}`)
    const why = info === undefined ? 'a legacy raw layer carries no checksum (a version 1-3 header, or a version 4/5 header without its own entry)' : 'its header records no checksum for this raw layer'
    return { frames: 0, bytes: 0, sha256: 'unknown', status: 'unverifiable', checked: `cannot be verified: ${why}; checked only that it exists and holds ${stat.size} bytes (>= ${mappedEnd} mapped)` }
  }
  if (stat.size !== info.fileSize) throw new Error(`expected ${info.fileSize} bytes, found ${stat.size}`)
  const hash = createHash('sha256')
  for (let pos = 0; pos < stat.size; pos += STEP) hash.update(await store.getRange(object, pos, Math.min(STEP, stat.size - pos), signal))
  const sha256 = wholeSha(info, stat.size, hash)
  return { frames: 0, bytes: stat.size, sha256, status: 'verified', checked: 'the whole raw object against its SHA-256 (no chunk digests: lazy reads of it are not verified)' }
}

async function checkObjectSize(store: ObjectStore, object: string, size: number): Promise<void> {
  const stat = await store.stat(object)
  if (!stat) throw new Error('data object missing')
  if (stat.size !== size) throw new Error(`expected ${size} bytes, found ${stat.size}`)
}
