/**
 * The decoded header of a build file and its per-build info: plain data, shared by the codec
 * (header.ts) and the checks (header-validate.ts) so neither imports the other for its shape.
 */
import type { FrameTable } from './frame-table.ts'
import type { RawDigests } from './raw-digests.ts'
import type { BuildId, Mapping } from './types.ts'

/** Per-build file info carried by V4 headers. A raw build has codec `none` and no frames. */
export interface BuildInfo {
  readonly buildId: BuildId
  /** Uncompressed size of the build's data file. */
  readonly fileSize: number
  /** SHA-256 of the uncompressed data file; all zeros = unknown. */
  readonly sha256: Uint8Array
  readonly frames: FrameTable
  /**
   * Raw builds only (codec none): the SHA-256 of each chunk of the data file, so a lazy read verifies
   * the chunk it fetched. Absent for raw builds written before (V3) or by e2b: those cannot be
   * verified chunk by chunk.
   */
  readonly digests?: RawDigests
}

/** The version numbers e2b has written: 1 and 2 use the V3 layout (they predate V4). */
export type HeaderVersion = 1 | 2 | 3 | 4 | 5

export interface Header {
  readonly version: HeaderVersion
  readonly blockSize: number
  /** Virtual size of the file. */
  readonly size: number
  readonly generation: number
  readonly buildId: BuildId
  readonly baseBuildId: BuildId
  /** V4/V5 flag bit 0: served by a peer while the upload runs; never stored. */
  readonly incomplete: boolean
  /** V4/V5 only. What a mapped build absent here is, layer-info.ts decides (e2b's rule). */
  readonly builds: Map<BuildId, BuildInfo>
  readonly mappings: Mapping[]
}
