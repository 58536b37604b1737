/**
 * The vocabulary of builds, layers, frames and mappings as types. Everything that stores, sends or reads a build speaks these.
 *
 * Sizes and offsets are JS numbers: u64/i64 values above Number.MAX_SAFE_INTEGER (8 PiB) are rejected
 * by the parsers, never rounded.
 */

/** Canonical lowercase UUID string, e.g. `0f8e...-...`. 16 raw bytes on the wire and in headers. */
export type BuildId = string

export const NIL_BUILD_ID: BuildId = '00000000-0000-0000-0000-000000000000'

/** The two build files of a build. `rootfs` is stored as `rootfs.ext4`. */
export type FileKind = 'memfile' | 'rootfs'
export const FILE_KINDS: readonly FileKind[] = ['memfile', 'rootfs']

/** Object-name stem of a build file kind. */
export function storageName(kind: FileKind): string {
  return kind === 'memfile' ? 'memfile' : 'rootfs.ext4'
}

export type CodecName = 'none' | 'zstd' | 'lz4'

/**
 * The one type for a build's state, whoever tells it: its origin (`framing` → `pending` → `uploaded`
 * or `failed`), an announcement (`pending`, `uploaded`, `failed`, or `cached`: a node that read the
 * build serves its frames), or a peer's answer (USE_STORAGE means uploaded, UPLOAD_FAILED failed).
 * It lives here, low, because the origin, the wire and the cluster's status board all use it.
 */
export type BuildState = 'framing' | 'pending' | 'uploaded' | 'cached' | 'failed'
/** The states an origin records for its own build (never `cached`). */
export type OriginBuildState = Exclude<BuildState, 'cached'>
/** The states a node announces (never `framing`: nothing can be served yet). */
export type AnnouncedState = Exclude<BuildState, 'framing'>
/** The states that say where the upload stands (the status board keeps only these). */
export type UploadState = Extract<BuildState, 'pending' | 'uploaded' | 'failed'>
/** Codec ids as stored in V4 frame tables. */
export const CODEC_IDS: Record<CodecName, number> = { none: 0, zstd: 1, lz4: 2 }

/** Object-name suffix of a data file stored with a codec. */
export function codecSuffix(codec: CodecName): string {
  return codec === 'none' ? '' : `.${codec}`
}

/** One frame of a data file: absolute uncompressed and compressed offsets. */
export interface Frame {
  readonly startU: number
  readonly startC: number
  readonly sizeU: number
  readonly sizeC: number
}

/** `{offset, length, buildId, buildStorageOffset}`: virtual range → range of that build's data file. */
export interface Mapping {
  readonly offset: number
  readonly length: number
  readonly buildId: BuildId
  readonly buildStorageOffset: number
}

/** Block sizes per kind. memfile uses 2 MiB huge pages, 4 KiB without. */
export const DEFAULT_BLOCK_SIZE: Record<FileKind, number> = { memfile: 2 * 1024 * 1024, rootfs: 4096 }
export const DEFAULT_FRAME_SIZE = 2 * 1024 * 1024
