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
