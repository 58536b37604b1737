/**
 * Upload one build to object storage (issue 3, the `build` and `pause` use cases): each data file is
 * framed, compressed and uploaded in parallel parts; blobs go alongside; the headers are written LAST,
 * with final frame tables and SHA-256 checksums — a header's presence means "this build is complete"
 * (DESIGN §3). Every object is written create-only under the build's claim (claim.ts): a second
 * writer of an existing build fails with ERR_BUILD_EXISTS and the first build stays intact. On failure
 * or cancellation no header is written and nothing of this attempt remains, so a retry starts clean.
 *
 * All-zero blocks are left out of the data files (holes, src/framing/holes.ts) unless `keepZeros` is set:
 * the header maps them to the nil build, in a child too, where they shadow the parent's bytes.
 */
import { createHash } from 'node:crypto'
import { type FileHandle, open, readFile } from 'node:fs/promises'
import { type CompressionConfig, type CompressionSettings, type UseCase, resolveCompression } from '../config/compression.ts'
import { InvalidArgumentError, SnapswarmError } from '../errors.ts'
import { type BuildInfo, type Header, encodeHeader } from '../format/header.ts'
import { layerHeader, singleLayerHeader, type WriteVersion } from '../format/mapping.ts'
import { type BuildId, type FileKind, DEFAULT_BLOCK_SIZE, FILE_KINDS, } from '../format/types.ts'
import { frameFile, framedInfo } from '../framing/framer.ts'
import { headerObjectName, loadStoredHeader } from '../read/open.ts'
import { dataObjectName } from '../read/source.ts'
import { MAX_PARTS, ObjectExistsError, type ObjectStore } from '../storage/store.ts'
import { splitDirty, zeroBlockFor } from '../framing/holes.ts'
import { acceptStoredData, BuildExistsError, contentDigest, pushWriter, putBuildObject, scanSource, writeClaimedBuild } from './claim.ts'
import { PartWriter } from './part-writer.ts'

export interface ByteRange {
  readonly start: number
  readonly end: number
}

export interface BuildFiles {
  memfile?: string
  rootfs?: string
  snapfile?: string
  metadata?: string
}

export interface UploadProgress {
  readonly kind: FileKind
  readonly total: number
  readonly read: number
  readonly compressed: number
  readonly uploaded: number
}

export interface UploadBuildOptions {
  readonly store: ObjectStore
  readonly buildId: BuildId
  readonly parent?: BuildId
  readonly files: BuildFiles
  /** With a parent: the virtual byte ranges each diff file holds, in order (block-aligned). */
  readonly dirty?: Partial<Record<FileKind, ByteRange[]>>
  readonly useCase: UseCase
  readonly compression?: CompressionConfig
  readonly blockSize?: Partial<Record<FileKind, number>>
  readonly signal?: AbortSignal
  readonly onProgress?: (p: UploadProgress) => void
  /** Who writes (named in the build's claim); default `push@{hostname}`. */
  readonly writer?: string
  /** Store all-zero blocks like any others instead of as holes (nil mappings). */
  readonly keepZeros?: boolean
  /** Header version written when build entries are needed: 4 (default) or 5 (config `format.headerVersion`). */
  readonly headerVersion?: WriteVersion
}

/** One error class for "this build id is taken", shared with the node's pause (it lives in claim.ts). */
export { BuildExistsError }

/** What uploadBuild knows of one data file before it writes anything: enough to claim the build. */
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

/**
 * Uploads one build under its claim (claim.ts): the inputs are hashed first, so the claim names the
 * content before the first object is written; a build id taken by another writer or content fails
 * with ERR_BUILD_EXISTS and nothing written. A source that changes during the upload fails the build.
 */
export async function uploadBuild(opts: UploadBuildOptions): Promise<Map<FileKind, Header>> {
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
    const claim = { writer: opts.writer ?? pushWriter(), digest }
    return await writeClaimedBuild(store, buildId, claim, opts.signal, () => writeBuild(opts, planned, blobs))
  } finally {
    await Promise.allSettled(planned.map((p) => p.fh.close()))
  }
}

async function planFile(opts: UploadBuildOptions, kind: FileKind): Promise<PlannedFile> {
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

async function readBlobs(opts: UploadBuildOptions): Promise<{ name: string; data: Uint8Array }[]> {
  const out: { name: string; data: Uint8Array }[] = []
  for (const blob of ['snapfile', 'metadata'] as const) {
    const path = opts.files[blob]
    if (path) out.push({ name: `${opts.buildId}/${blob === 'metadata' ? 'metadata.json' : 'snapfile'}`, data: await readFile(path) })
  }
  return out
}

/** The objects of a claimed build: data files, blobs, then the headers (their presence means complete). */
async function writeBuild(opts: UploadBuildOptions, planned: PlannedFile[], blobs: { name: string; data: Uint8Array }[]): Promise<Map<FileKind, Header>> {
  const { store, buildId } = opts
  const headers = new Map<FileKind, Header>()
  for (const p of planned) {
    const data = await uploadDataFile({ store, buildId, kind: p.kind, file: p.fh, settings: p.settings, zeroBlock: p.zeroBlock, storedSize: p.storedSize, signal: opts.signal, onProgress: opts.onProgress })
    if (data.size !== p.size || !Buffer.from(data.sourceSha256).equals(Buffer.from(p.sha256))) {
      throw new SnapswarmError('ERR_SOURCE_CHANGED', `${opts.files[p.kind]} changed during the upload: expected ${p.size} bytes with the SHA-256 hashed before it, found ${data.size} bytes and another SHA-256`)
    }
    const dirty = p.parent ? checkDirty(opts.dirty?.[p.kind], data.size, p.parent, p.kind) : undefined
    headers.set(p.kind, buildHeader({ buildId, blockSize: p.blockSize, info: data.info, parent: p.parent, dirty, holes: data.holes, headerVersion: opts.headerVersion }))
  }
  for (const b of blobs) await putBuildObject(store, buildId, b.name, b.data, opts.signal)
  opts.signal?.throwIfAborted()
  for (const [kind, header] of headers) await putBuildObject(store, buildId, headerObjectName(buildId, kind), encodeHeader(header), opts.signal)
  return headers
}

function sha256(data: Uint8Array): Uint8Array {
  return createHash('sha256').update(data).digest()
}

export interface DataUploadOptions {
  readonly store: ObjectStore
  readonly buildId: BuildId
  readonly kind: FileKind
  /** The plain (uncompressed) data file. */
  readonly file: FileHandle
  readonly settings: CompressionSettings
  readonly signal?: AbortSignal
  readonly onProgress?: (p: UploadProgress) => void
  /** Called before each part is sent, with its size: the node's upload bandwidth limit. */
  readonly throttle?: (bytes: number) => Promise<void>
  /** Leave all-zero blocks of this size out as holes (zeroBlockFor); undefined stores every byte. */
  readonly zeroBlock?: number
  /**
   * The uncompressed bytes the object will hold (the file minus its holes), for the object's
   * `uncompressed-size` metadata, which some backends need before the first part; the framing must
   * agree (else ERR_SOURCE_CHANGED). Defaults to the file size, so it is required with `zeroBlock`.
   */
  readonly storedSize?: number
}

/** One uploaded data file: its layer's BuildInfo, and what the header derivation needs besides. */
export interface UploadedData {
  readonly info: BuildInfo
  /** Input ranges left out as zeros (sorted, disjoint). */
  readonly holes: readonly ByteRange[]
  /** Bytes of input and their SHA-256 (holes included): what the source held. */
  readonly size: number
  readonly sourceSha256: Uint8Array
}

/**
 * Frame, compress and upload one plain data file as `{buildId}/{name}{suffix}` in parallel parts.
 * Returns the layer's BuildInfo (frame table + SHA-256 of the stored bytes) and its holes; on failure
 * the multipart upload is aborted.
 */
export async function uploadDataFile(opts: DataUploadOptions): Promise<UploadedData> {
  const { settings } = opts
  const size = (await opts.file.stat()).size
  // Checked before a byte is sent: the stored object (≤ the raw size) must fit in MAX_PARTS parts.
  if (Math.ceil(size / settings.partSize) > MAX_PARTS) {
    throw new InvalidArgumentError(`${opts.kind} is ${size} bytes: more than ${MAX_PARTS} parts of ${settings.partSize} bytes; raise compression.*.partSize`)
  }
  if (opts.zeroBlock !== undefined && opts.storedSize === undefined) throw new InvalidArgumentError('uploadDataFile: expected storedSize with zeroBlock, found none')
  const storedSize = opts.storedSize ?? size
  const name = dataObjectName(opts.buildId, opts.kind, settings.codec)
  const upload = opts.store.startUpload(name, { metadata: sizeMetadata(settings.codec, storedSize) })
  let progress: UploadProgress = { kind: opts.kind, total: size, read: 0, compressed: 0, uploaded: 0 }
  const report = (p: Partial<UploadProgress>) => {
    progress = { ...progress, ...p }
    opts.onProgress?.(progress)
  }
  const writer = new PartWriter(upload, {
    partSize: settings.partSize,
    concurrency: settings.uploadConcurrency,
    signal: opts.signal,
    throttle: opts.throttle,
    onUploaded: (uploaded) => report({ uploaded }),
  })
  let framed: Awaited<ReturnType<typeof frameFile>>
  try {
    const framing = { ...settings, zeroBlock: opts.zeroBlock, signal: opts.signal, onProgress: (read: number, compressed: number) => report({ read, compressed }) }
    framed = await frameFile(opts.file, framing, (stored) => writer.write(stored), { offset: 0, length: size })
    if (framed.storedSize !== storedSize) {
      throw new SnapswarmError('ERR_SOURCE_CHANGED', `${opts.kind} changed during the upload: expected ${storedSize} bytes to store (counted before), found ${framed.storedSize}`)
    }
    await finishData(opts, name, writer)
  } catch (err) {
    await writer.abort().catch(() => {})
    throw err
  }
  return { info: framedInfo(opts.buildId, settings.codec, framed), holes: framed.holes, size: framed.size, sourceSha256: framed.sourceSha256 }
}


/**
 * Upload a data file that is already framed on local disk (the origin's pending copy) byte for byte:
 * no second compression, and the stored frames are exactly the ones peers were served.
 */
export async function uploadPrepacked(opts: Omit<DataUploadOptions, 'file'> & { dataFile: FileHandle; info: BuildInfo }): Promise<void> {
  const codec = opts.info.frames.codec
  const name = dataObjectName(opts.buildId, opts.kind, codec)
  const sizeC = codec === 'none' ? opts.info.fileSize : opts.info.frames.compressedSize
  const upload = opts.store.startUpload(name, { metadata: sizeMetadata(codec, opts.info.fileSize) })
  const writer = new PartWriter(upload, {
    partSize: opts.settings.partSize,
    concurrency: opts.settings.uploadConcurrency,
    signal: opts.signal,
    throttle: opts.throttle,
    onUploaded: (uploaded) => opts.onProgress?.({ kind: opts.kind, total: opts.info.fileSize, read: opts.info.fileSize, compressed: sizeC, uploaded }),
  })
  try {
    const buf = Buffer.allocUnsafe(Math.min(opts.settings.partSize, 8 * 1024 * 1024))
    for (let pos = 0; pos < sizeC; ) {
      opts.signal?.throwIfAborted()
      const { bytesRead } = await opts.dataFile.read(buf, 0, Math.min(buf.byteLength, sizeC - pos), pos)
      if (bytesRead === 0) throw new InvalidArgumentError(`local data file of ${opts.buildId} ended at ${pos}, expected ${sizeC} bytes`)
      await writer.write(buf.subarray(0, bytesRead))
      pos += bytesRead
    }
    await finishData(opts, name, writer)
  } catch (err) {
    await writer.abort().catch(() => {})
    throw err
  }
}

/**
 * e2b's `uncompressed-size` object metadata (a sidecar file in a filesystem bucket): written, as e2b
 * writes it, for compressed objects only; a raw object's size is its own.
 */
function sizeMetadata(codec: CompressionSettings['codec'], storedSize: number): Record<string, string> {
  return codec === 'none' ? {} : { 'uncompressed-size': String(storedSize) }
}

/**
 * Completes a data object, create-only. Callers hold the build's claim, so an object already stored
 * under the name is this writer's own (an earlier attempt, or a request that landed before its retry)
 * and is accepted if its size is what this attempt wrote; the parts are removed either way.
 */
async function finishData(opts: { store: ObjectStore; buildId: BuildId }, name: string, writer: PartWriter): Promise<void> {
  try {
    await writer.finish()
  } catch (err) {
    if (!(err instanceof ObjectExistsError)) throw err
    await writer.abort()
    await acceptStoredData(opts.store, opts.buildId, name, writer.bytesWritten, err)
  }
}

export interface NewLayer {
  readonly buildId: BuildId
  readonly blockSize: number
  readonly info: BuildInfo
  readonly parent: Header | null
  /** With a parent: the virtual ranges the input file holds, packed in order. */
  readonly dirty?: readonly ByteRange[]
  /** Input ranges left out as zeros: nil mappings (in a child, they shadow the parent). */
  readonly holes?: readonly ByteRange[]
  readonly incomplete?: boolean
  readonly headerVersion?: WriteVersion
}

/** The header of a new layer: single-layer without a parent, else derived from the parent's header. */
export function buildHeader(l: NewLayer): Header {
  const holes = l.holes ?? []
  const { buildId, info, incomplete, headerVersion } = l
  if (!l.parent) return singleLayerHeader({ buildId, blockSize: l.blockSize, info, incomplete, empty: holes, headerVersion })
  if (!l.dirty) throw new InvalidArgumentError('a layer with a parent needs its dirty ranges')
  const { dirty, empty } = splitDirty(l.dirty, holes)
  return layerHeader(l.parent, { buildId, dirty, empty, info, incomplete, headerVersion })
}

export function checkDirty(ranges: ByteRange[] | undefined, diffSize: number, parent: Header, kind: FileKind): ByteRange[] {
  if (!ranges) throw new InvalidArgumentError(`--dirty is required for ${kind} when a parent is given`)
  let total = 0
  let prevEnd = 0
  for (const r of ranges) {
    if (!(r.start >= prevEnd && r.end > r.start && r.end <= parent.size)) {
      throw new InvalidArgumentError(`dirty ranges of ${kind} must be sorted, non-overlapping and inside the parent's size ${parent.size}; found ${r.start}-${r.end}`)
    }
    if (r.start % parent.blockSize !== 0 || (r.end % parent.blockSize !== 0 && r.end !== parent.size)) {
      throw new InvalidArgumentError(`dirty range ${r.start}-${r.end} of ${kind} is not aligned to the block size ${parent.blockSize}`)
    }
    total += r.end - r.start
    prevEnd = r.end
  }
  if (total !== diffSize) throw new InvalidArgumentError(`the dirty ranges of ${kind} cover ${total} bytes but the diff file holds ${diffSize}`)
  return ranges
}

/** Parse `0-2097152,8388608-10485760` (the `--dirty` flag). */
export function parseRanges(text: string): ByteRange[] {
  return text.split(',').filter(Boolean).map((part) => {
    const m = /^(\d+)-(\d+)$/.exec(part.trim())
    if (!m) throw new InvalidArgumentError(`expected START-END byte ranges, found '${part}'`)
    return { start: Number(m[1]), end: Number(m[2]) }
  })
}
