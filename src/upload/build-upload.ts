/**
 * Upload one build to object storage: the one path for `snapswarm push` (plain files named by path)
 * and for a node's pause (files it already framed locally and checked, see src/origin/pause.ts).
 * Each data file is framed, compressed and uploaded in parallel parts (or sent as its local framed
 * copy); blobs go alongside; the headers are written LAST, with final frame tables and SHA-256
 * checksums: a header's presence means "this build is complete". Every object is written create-only
 * under the build's claim (claim.ts): a second writer of an existing build fails with
 * ERR_BUILD_EXISTS and the first build stays intact. On failure or cancellation no header is written
 * and nothing of this attempt remains, so a retry starts clean.
 *
 * All-zero blocks are left out of the data files (holes, src/framing/holes.ts) unless `keepZeros` is set:
 * the header maps them to the nil build, in a child too, where they shadow the parent's bytes.
 */
import { createHash } from 'node:crypto'
import { type FileHandle, open, readFile } from 'node:fs/promises'
import { type CompressionConfig, type CompressionSettings, type UseCase, resolveCompression } from '../config/compression.ts'
import { InvalidArgumentError } from '../errors.ts'
import type { ByteRange } from '../format/frame-table.ts'
import { type Header, encodeHeader } from '../format/header.ts'
import { type BlobKind, BLOB_KINDS, blobObjectName, headerObjectName } from '../format/layout.ts'
import type { WriteVersion } from '../format/mapping.ts'
import { type BuildId, type FileKind, DEFAULT_BLOCK_SIZE, FILE_KINDS } from '../format/types.ts'
import { zeroBlockFor } from '../framing/holes.ts'
import type { ObjectStore } from '../storage/store.ts'
import { loadStoredHeader } from '../storage/stored-header.ts'
import { BuildExistsError, type BuildWriter, contentDigest, pushWriter, putBuildObject, scanSource, writeClaimedBuild } from './claim.ts'
import { type DataSource, type UploadProgress, uploadData } from './data-upload.ts'
import { checkDirty, headerForFramed } from './layer-header.ts'

export type { UploadProgress } from './data-upload.ts'

export interface BuildFiles {
  memfile?: string
  rootfs?: string
  snapfile?: string
  metadata?: string
}

/** What every upload shares: where it goes, how it is paced and watched, the header version it writes. */
interface UploadCommon {
  readonly store: ObjectStore
  readonly buildId: BuildId
  readonly signal?: AbortSignal
  readonly onProgress?: (p: UploadProgress) => void
  /** Called before each part is sent, with its size: the node's upload bandwidth limit. */
  readonly throttle?: (bytes: number) => Promise<void>
  /** Header version written when build entries are needed: 4 (default) or 5 (config `format.headerVersion`). */
  readonly headerVersion?: WriteVersion
}

/** `snapswarm push`: plain files by path, hashed and claimed here. */
export interface PushUpload extends UploadCommon {
  readonly parent?: BuildId
  readonly files: BuildFiles
  /** With a parent: the virtual byte ranges each diff file holds, in order (block-aligned). */
  readonly dirty?: Partial<Record<FileKind, ByteRange[]>>
  readonly useCase: UseCase
  readonly compression?: CompressionConfig
  readonly blockSize?: Partial<Record<FileKind, number>>
  /** Who writes (named in the build's claim); default `push@{hostname}`. */
  readonly writer?: string
  /** Store all-zero blocks like any others instead of as holes (nil mappings). */
  readonly keepZeros?: boolean
}

/** A build its writer prepared itself (a node's pause): its claim, and each file as it comes to be uploaded. */
export interface PreparedUpload extends UploadCommon {
  readonly prepared: PreparedBuild
}

export type UploadBuildOptions = PushUpload | PreparedUpload

export interface PreparedBuild {
  readonly claim: BuildWriter
  /** Data files, uploaded in this order. */
  readonly files: readonly PreparedFile[]
  /** Blobs, stored after the data files. */
  readonly blobs: readonly PreparedBlob[]
}

export interface PreparedFile {
  readonly kind: FileKind
  /** Asked just before this file is uploaded: a child of a pending parent waits here for the parent's final header. */
  readonly plan: (signal?: AbortSignal) => Promise<FilePlan>
}

export interface FilePlan {
  readonly parent: Header | null
  readonly blockSize: number
  readonly settings: CompressionSettings
  /** With a parent: the dirty ranges as the request gave them (checked here). */
  readonly dirty?: readonly ByteRange[]
  readonly source: DataSource
}

export interface PreparedBlob {
  readonly blob: BlobKind
  /** Its bytes, read when it is stored. */
  readonly bytes: () => Promise<Uint8Array>
}

/**
 * Uploads one build under its claim. A push hashes its inputs first, so the claim names the content
 * before the first object is written; a build id taken by another writer or content fails with
 * ERR_BUILD_EXISTS and nothing written. A source that changes during the upload fails the build.
 */
export async function uploadBuild(opts: UploadBuildOptions): Promise<Map<FileKind, Header>> {
  if ('prepared' in opts) return writeClaimedBuild(opts.store, opts.buildId, opts.prepared.claim, opts.signal, () => writeBuild(opts, opts.prepared))
  return push(opts)
}

/** The objects of a claimed build: data files, blobs, then the headers (their presence means complete). */
async function writeBuild(opts: UploadCommon, build: PreparedBuild): Promise<Map<FileKind, Header>> {
  const { store, buildId, signal } = opts
  const headers = new Map<FileKind, Header>()
  for (const f of build.files) {
    const plan = await f.plan(signal)
    const target = { store, buildId, kind: f.kind, settings: plan.settings, signal, onProgress: opts.onProgress, throttle: opts.throttle }
    const { info, holes } = await uploadData(target, plan.source)
    const layer = { buildId, blockSize: plan.blockSize, info, parent: plan.parent, dirty: plan.dirty, holes, headerVersion: opts.headerVersion }
    headers.set(f.kind, headerForFramed(f.kind, layer))
  }
  for (const b of build.blobs) await putBuildObject(store, buildId, blobObjectName(buildId, b.blob), await b.bytes(), signal)
  signal?.throwIfAborted()
  for (const [kind, header] of headers) await putBuildObject(store, buildId, headerObjectName(buildId, kind), encodeHeader(header), signal)
  return headers
}

/** What a push knows of one data file before it writes anything: enough to claim the build. */
interface PlannedFile {
  readonly kind: FileKind
  readonly fh: FileHandle
  readonly size: number
  readonly sha256: Uint8Array
  readonly parent: Header | null
  readonly blockSize: number
  readonly settings: CompressionSettings
  readonly zeroBlock: number | undefined
  /** Uncompressed bytes the data object will hold (the file minus its holes). */
  readonly storedSize: number
}

async function push(opts: PushUpload): Promise<Map<FileKind, Header>> {
  const { store, buildId } = opts
  const kinds = FILE_KINDS.filter((k) => opts.files[k])
  if (kinds.length === 0) throw new InvalidArgumentError('a build needs at least one of memfile, rootfs')
  for (const kind of kinds) {
    const name = headerObjectName(buildId, kind)
    if (await store.exists(name)) throw new BuildExistsError(buildId, `expected no stored build, found ${name}`)
  }
  const planned: PlannedFile[] = []
  try {
    for (const kind of kinds) planned.push(await planFile(opts, kind))
    const blobs = await readBlobs(opts)
    // Holes are named in the claim only when the file has some, as a pause of the same content names them.
    const files = planned.map((p) => ({ ...p, zeroBlock: p.storedSize < p.size ? p.zeroBlock : undefined }))
    const digest = contentDigest(opts.parent, files, blobs.map((b) => ({ name: b.name, sha256: sha256(b.data) })))
    const prepared: PreparedBuild = {
      claim: { writer: opts.writer ?? pushWriter(), digest },
      files: planned.map((p) => ({ kind: p.kind, plan: async () => pushPlan(opts, p) })),
      blobs: blobs.map((b) => ({ blob: b.blob, bytes: async () => b.data })),
    }
    return await uploadBuild({ ...opts, prepared })
  } finally {
    await Promise.allSettled(planned.map((p) => p.fh.close()))
  }
}

function pushPlan(opts: PushUpload, p: PlannedFile): FilePlan {
  const source = { plain: p.fh, path: opts.files[p.kind]!, expect: { size: p.size, sha256: p.sha256 }, zeroBlock: p.zeroBlock, storedSize: p.storedSize }
  return { parent: p.parent, blockSize: p.blockSize, settings: p.settings, dirty: opts.dirty?.[p.kind], source }
}

async function planFile(opts: PushUpload, kind: FileKind): Promise<PlannedFile> {
  const parent = opts.parent ? await loadStoredHeader(opts.store, opts.parent, kind) : null
  const blockSize = parent?.blockSize ?? opts.blockSize?.[kind] ?? DEFAULT_BLOCK_SIZE[kind]
  const settings = resolveCompression(opts.compression, kind, opts.useCase, blockSize)
  const fh = await open(opts.files[kind]!, 'r')
  try {
    const size = (await fh.stat()).size
    if (parent) checkDirty(opts.dirty?.[kind], size, parent, kind)
    const zeroBlock = opts.keepZeros ? undefined : zeroBlockFor(blockSize, settings.frameSize)
    const { sha256, storedSize } = await scanSource(fh, zeroBlock, opts.signal)
    return { kind, fh, size, sha256, parent, blockSize, settings, zeroBlock, storedSize }
  } catch (err) {
    await fh.close()
    throw err
  }
}

/** The blobs of a push, read whole (they are small: the claim names their SHA-256). */
async function readBlobs(opts: PushUpload): Promise<{ blob: BlobKind; name: string; data: Uint8Array }[]> {
  const out: { blob: BlobKind; name: string; data: Uint8Array }[] = []
  for (const blob of BLOB_KINDS) {
    const path = opts.files[blob]
    if (path) out.push({ blob, name: blobObjectName(opts.buildId, blob), data: await readFile(path) })
  }
  return out
}

function sha256(data: Uint8Array): Uint8Array {
  return createHash('sha256').update(data).digest()
}
