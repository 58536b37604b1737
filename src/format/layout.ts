/**
 * The bucket layout: every object name of a build, in one place. A build lives under the prefix
 * `{buildId}/` (e2b's layout, so both systems read each other's buckets):
 *
 *   {buildId}/memfile[.zstd|.lz4]          data of a file kind, compressed or raw, never both
 *   {buildId}/rootfs.ext4[.zstd|.lz4]
 *   {buildId}/memfile.header               its header; written LAST: its presence means "complete"
 *   {buildId}/rootfs.ext4.header
 *   {buildId}/snapfile                     blobs: the VM state and its metadata
 *   {buildId}/metadata.json
 *   {buildId}/memfile.prefetch             access traces, written beside a build after it is read
 *   {buildId}/rootfs.ext4.prefetch
 *   {buildId}/snapswarm.claim              the writer's claim while an upload runs (src/upload/claim.ts)
 *
 * A filesystem bucket keeps an object's `uncompressed-size` metadata in a sidecar file
 * `{object}.uncompressed-size` beside it, as e2b does (src/storage/fs-store.ts).
 *
 * Inside a build, blobs and traces also go by their name relative to the build (`snapfile`,
 * `memfile.prefetch`): the name a peer asks for in the blob protocol.
 */
import { type BuildId, type CodecName, type FileKind, codecSuffix, storageName } from './types.ts'

/** The blobs stored beside a build's data files, by the name a pause or push request gives them. */
export type BlobKind = 'snapfile' | 'metadata'
export const BLOB_KINDS: readonly BlobKind[] = ['snapfile', 'metadata']

/** The claim's name relative to its build. */
export const CLAIM_OBJECT = 'snapswarm.claim'

/** Object metadata key of e2b's uncompressed size of a compressed data object. */
export const UNCOMPRESSED_SIZE_KEY = 'uncompressed-size'
/** Suffix of the sidecar file holding that size beside an object in a filesystem bucket. */
export const SIZE_SIDECAR_SUFFIX = `.${UNCOMPRESSED_SIZE_KEY}`

/** The prefix every object of a build is stored under. */
export function buildPrefix(buildId: BuildId): string {
  return `${buildId}/`
}

/** A data file's name relative to its build (`memfile.zstd`, `rootfs.ext4`): also a packed directory's. */
export function dataFileName(kind: FileKind, codec: CodecName): string {
  return `${storageName(kind)}${codecSuffix(codec)}`
}

/** A header's name relative to its build (`memfile.header`): also a packed directory's. */
export function headerFileName(kind: FileKind): string {
  return `${storageName(kind)}.header`
}

/** A build file's data object: stored compressed (codec suffix) or raw, never both. */
export function dataObjectName(buildId: BuildId, kind: FileKind, codec: CodecName): string {
  return `${buildPrefix(buildId)}${dataFileName(kind, codec)}`
}

/** A build file's header object. */
export function headerObjectName(buildId: BuildId, kind: FileKind): string {
  return `${buildPrefix(buildId)}${headerFileName(kind)}`
}

/** A blob's name relative to its build (`snapfile`, `metadata.json`). */
export function blobFileName(blob: BlobKind): string {
  return blob === 'metadata' ? 'metadata.json' : 'snapfile'
}

/** The blob kind a relative name stands for, if it names one. */
export function blobKindOf(name: string): BlobKind | undefined {
  return BLOB_KINDS.find((b) => blobFileName(b) === name)
}

/** A blob's object name. */
export function blobObjectName(buildId: BuildId, blob: BlobKind): string {
  return `${buildPrefix(buildId)}${blobFileName(blob)}`
}

/** An access trace's name relative to its build (`memfile.prefetch`, `rootfs.ext4.prefetch`). */
export function traceBlobName(kind: FileKind): string {
  return `${storageName(kind)}.prefetch`
}

/** The file kind a relative name stands for, when it names a trace. */
export function traceKindOf(name: string): FileKind | undefined {
  if (name === traceBlobName('memfile')) return 'memfile'
  if (name === traceBlobName('rootfs')) return 'rootfs'
  return undefined
}

/** An access trace's object name, beside the build. */
export function traceObjectName(buildId: BuildId, kind: FileKind): string {
  return `${buildPrefix(buildId)}${traceBlobName(kind)}`
}

/** The claim object of a build. */
export function claimObjectName(buildId: BuildId): string {
  return `${buildPrefix(buildId)}${CLAIM_OBJECT}`
}

/** Every name a peer may ask for in the blob protocol: the blobs and the traces. */
export const PEER_BLOB_NAMES: readonly string[] = [...BLOB_KINDS.map(blobFileName), traceBlobName('memfile'), traceBlobName('rootfs')]
