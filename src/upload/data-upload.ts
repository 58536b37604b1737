/**
 * One data file of a build into object storage as `{buildId}/{name}{suffix}`, in parallel parts,
 * create-only: framed and compressed from the plain file, or sent byte for byte from a copy already
 * framed on local disk (the origin's pending copy) when that copy has the upload's geometry. On failure
 * the multipart upload is aborted.
 */
import type { FileHandle } from 'node:fs/promises'
import { open } from 'node:fs/promises'
import type { CompressionSettings } from '../config/compression.ts'
import { InvalidArgumentError, SnapswarmError } from '../errors.ts'
import type { ByteRange, FrameTable } from '../format/frame-table.ts'
import type { BuildInfo } from '../format/header.ts'
import { dataObjectName, UNCOMPRESSED_SIZE_KEY } from '../format/layout.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import { frameFile, framedInfo } from '../framing/framer.ts'
import { MAX_PARTS, ObjectExistsError, type ObjectStore } from '../storage/store.ts'
import { acceptStoredData } from './claim.ts'
import { PartWriter } from './part-writer.ts'

export interface UploadProgress {
  readonly kind: FileKind
  readonly total: number
  readonly read: number
  readonly compressed: number
  readonly uploaded: number
}

/** A source differs from what the build was planned or announced with: the build fails instead of changing content. */
export class SourceChangedError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_SOURCE_CHANGED', message)
  }
}

/** Where the upload of one data file goes and how it is paced. */
export interface DataTarget {
  readonly store: ObjectStore
  readonly buildId: BuildId
  readonly kind: FileKind
  readonly settings: CompressionSettings
  readonly signal?: AbortSignal
  readonly onProgress?: (p: UploadProgress) => void
  /** Called before each part is sent, with its size: the node's upload bandwidth limit. */
  readonly throttle?: (bytes: number) => Promise<void>
}

/** A copy of a data file already framed on local disk: where, its layer info and its holes. */
export interface FramedCopy {
  readonly dataPath: string
  readonly info: BuildInfo
  readonly holes: readonly ByteRange[]
}

/** One data file as the upload gets it: the plain file it must store, and maybe a framed copy of it. */
export interface DataSource {
  /** The plain file, read from this handle (the very file that was hashed or checked); `path` names it in errors. */
  readonly plain: FileHandle
  readonly path: string
  /** What the plain file held when the build was planned: its size and SHA-256 (holes included). */
  readonly expect: { readonly size: number; readonly sha256: Uint8Array }
  /** Leave all-zero blocks of this size out as holes (zeroBlockFor); undefined stores every byte. */
  readonly zeroBlock?: number
  /**
   * The uncompressed bytes the object will hold (the file minus its holes), for the object's
   * `uncompressed-size` metadata, which some backends need before the first part.
   */
  readonly storedSize: number
  /** A local framed copy of these bytes: sent as it is when its geometry is the upload's. */
  readonly framed?: FramedCopy
}

/** One uploaded data file: its layer's BuildInfo and the input ranges left out as zeros. */
export interface StoredData {
  readonly info: BuildInfo
  readonly holes: readonly ByteRange[]
}

/** Uploads one data file, from its framed copy when that has the upload's geometry, else framed from the plain file. */
export async function uploadData(t: DataTarget, src: DataSource): Promise<StoredData> {
  if (src.framed && sameGeometry(src.framed.info.frames, t.settings)) {
    const fh = await open(src.framed.dataPath, 'r')
    try {
      await uploadPrepacked(t, fh, src.framed.info)
    } finally {
      await fh.close()
    }
    return { info: src.framed.info, holes: src.framed.holes }
  }
  const data = await uploadDataFile(t, src)
  if (data.size !== src.expect.size || !Buffer.from(data.sourceSha256).equals(Buffer.from(src.expect.sha256))) {
    throw new SourceChangedError(`${src.path} changed during the upload: expected ${src.expect.size} bytes with the SHA-256 hashed before it, found ${data.size} bytes and another SHA-256`)
  }
  return { info: data.info, holes: data.holes }
}

/** True when a framed copy's frames are exactly the ones the upload's settings would cut. */
export function sameGeometry(table: FrameTable, s: CompressionSettings): boolean {
  if (table.codec !== s.codec) return false
  if (s.codec === 'none') return true
  // Every frame but the last has exactly frameSize uncompressed bytes: the same cut as a re-frame.
  return table.frames.every((f, i) => f.sizeU === s.frameSize || i === table.frames.length - 1)
}

/** Frame, compress and upload a plain data file; returns its layer info, holes, and what the source held. */
async function uploadDataFile(t: DataTarget, src: DataSource): Promise<StoredData & { size: number; sourceSha256: Uint8Array }> {
  const { settings } = t
  const size = (await src.plain.stat()).size
  // Checked before a byte is sent: the stored object (≤ the raw size) must fit in MAX_PARTS parts.
  if (Math.ceil(size / settings.partSize) > MAX_PARTS) {
    throw new InvalidArgumentError(`${t.kind} is ${size} bytes: more than ${MAX_PARTS} parts of ${settings.partSize} bytes; raise compression.*.partSize`)
  }
  const name = dataObjectName(t.buildId, t.kind, settings.codec)
  const upload = t.store.startUpload(name, { metadata: sizeMetadata(settings.codec, src.storedSize) })
  let progress: UploadProgress = { kind: t.kind, total: size, read: 0, compressed: 0, uploaded: 0 }
  const report = (p: Partial<UploadProgress>) => {
    progress = { ...progress, ...p }
    t.onProgress?.(progress)
  }
  const writer = partWriter(t, upload, (uploaded) => report({ uploaded }))
  let framed: Awaited<ReturnType<typeof frameFile>>
  try {
    const framing = { ...settings, zeroBlock: src.zeroBlock, signal: t.signal, onProgress: (read: number, compressed: number) => report({ read, compressed }) }
    framed = await frameFile(src.plain, framing, (stored) => writer.write(stored), { offset: 0, length: size })
    if (framed.storedSize !== src.storedSize) {
      throw new SourceChangedError(`${t.kind} changed during the upload: expected ${src.storedSize} bytes to store (counted before), found ${framed.storedSize}`)
    }
    await finishData(t, name, writer)
  } catch (err) {
    await writer.abort().catch(() => {})
    throw err
  }
  return { info: framedInfo(t.buildId, settings.codec, framed), holes: framed.holes, size: framed.size, sourceSha256: framed.sourceSha256 }
}

/** Sends a data file already framed on local disk byte for byte: no second compression, the frames peers were served. */
async function uploadPrepacked(t: DataTarget, dataFile: FileHandle, info: BuildInfo): Promise<void> {
  const codec = info.frames.codec
  const name = dataObjectName(t.buildId, t.kind, codec)
  const sizeC = codec === 'none' ? info.fileSize : info.frames.compressedSize
  const upload = t.store.startUpload(name, { metadata: sizeMetadata(codec, info.fileSize) })
  const writer = partWriter(t, upload, (uploaded) => t.onProgress?.({ kind: t.kind, total: info.fileSize, read: info.fileSize, compressed: sizeC, uploaded }))
  try {
    const buf = Buffer.allocUnsafe(Math.min(t.settings.partSize, 8 * 1024 * 1024))
    for (let pos = 0; pos < sizeC; ) {
      t.signal?.throwIfAborted()
      const { bytesRead } = await dataFile.read(buf, 0, Math.min(buf.byteLength, sizeC - pos), pos)
      if (bytesRead === 0) throw new InvalidArgumentError(`local data file of ${t.buildId} ended at ${pos}, expected ${sizeC} bytes`)
      await writer.write(buf.subarray(0, bytesRead))
      pos += bytesRead
    }
    await finishData(t, name, writer)
  } catch (err) {
    await writer.abort().catch(() => {})
    throw err
  }
}

function partWriter(t: DataTarget, upload: ReturnType<ObjectStore['startUpload']>, onUploaded: (bytes: number) => void): PartWriter {
  return new PartWriter(upload, { partSize: t.settings.partSize, concurrency: t.settings.uploadConcurrency, signal: t.signal, throttle: t.throttle, onUploaded })
}

/**
 * e2b's `uncompressed-size` object metadata (a sidecar file in a filesystem bucket): written, as e2b
 * writes it, for compressed objects only; a raw object's size is its own.
 */
function sizeMetadata(codec: CompressionSettings['codec'], storedSize: number): Record<string, string> {
  return codec === 'none' ? {} : { [UNCOMPRESSED_SIZE_KEY]: String(storedSize) }
}

/**
 * Completes a data object, create-only. Callers hold the build's claim, so an object already stored
 * under the name is this writer's own (an earlier attempt, or a request that landed before its retry)
 * and is accepted if its size is what this attempt wrote; the parts are removed either way.
 */
async function finishData(t: DataTarget, name: string, writer: PartWriter): Promise<void> {
  try {
    await writer.finish()
  } catch (err) {
    if (!(err instanceof ObjectExistsError)) throw err
    await writer.abort()
    await acceptStoredData(t.store, t.buildId, name, writer.bytesWritten, err)
  }
}
