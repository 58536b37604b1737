/**
 * Compression settings: codec, level, frame size, encode workers, part size
 * and upload concurrency, per file type and per use case. A setting resolves as
 * `default` ← `<kind>` ← `<kind>.<useCase>`; "codec: none" is an instant rollback — readers never
 * consult this config, they follow each build's header, so old compressed builds stay readable.
 */
import { z } from 'zod'
import { InvalidArgumentError } from '../errors.ts'
import { type CodecName, DEFAULT_BLOCK_SIZE, type FileKind } from '../format/types.ts'

export type UseCase = 'build' | 'pause'
export const USE_CASES: readonly UseCase[] = ['build', 'pause']

const MiB = 1024 * 1024
/** GCS compose and S3-style multipart both want parts ≥ 5 MiB (except the last) and ≤ 10,000 parts. */
export const MIN_PART_SIZE = 5 * MiB
export const MAX_PART_SIZE = 5 * 1024 * MiB
/**
 * Largest frame this tool writes (and so the largest a peer serves or asks for): far above the 2 MiB
 * default, far below the format's own limit (MAX_FRAME_SIZE in src/format/codec-common.ts).
 */
export const MAX_WRITTEN_FRAME_SIZE = 64 * MiB

export const compressionSettingsSchema = z
  .object({
    codec: z.enum(['none', 'zstd', 'lz4']),
    level: z.number().int().min(1).max(19),
    frameSize: z.number().int().positive().max(MAX_WRITTEN_FRAME_SIZE),
    workers: z.number().int().min(1).max(64),
    partSize: z.number().int().min(MIN_PART_SIZE).max(MAX_PART_SIZE),
    uploadConcurrency: z.number().int().min(1).max(64),
  })
  .strict()

export type CompressionSettings = z.infer<typeof compressionSettingsSchema> & { codec: CodecName }

const partial = compressionSettingsSchema.partial()
const perKind = partial.extend({ build: partial.optional(), pause: partial.optional() }).strict()

export const compressionConfigSchema = z
  .object({ default: partial.optional(), memfile: perKind.optional(), rootfs: perKind.optional() })
  .strict()

export type CompressionConfig = z.infer<typeof compressionConfigSchema>

/**
 * e2b's "level 2" default is libzstd level 3.
 *
 * Parts are 12 MiB, not e2b's 50 MiB, for the push's memory bound (≤ 300 MiB
 * whatever the file size). A push holds up to (uploadConcurrency + 1) × partSize of part buffers once
 * storage is slower than compression, on top of a fixed ~120-135 MiB (Node, type stripping, the GCS
 * SDK) and ~70-90 MiB of dead frame buffers that V8 collects only when external memory has grown by its
 * threshold. Measured peak RSS of `snapswarm push` of 1 GiB with part uploads slowed to 20 MB/s
 * (bench/upload-bench.ts, 2 shared cores): 50 MiB × 4 → 417-432 MiB; 50 × 2 → 369; 16 × 4 → 303-322;
 * 16 × 3 → 282-295; 12 × 4 → 274-283. 12 MiB × 4 keeps four upload streams (per-request latency is
 * hidden; fast codecs are upload-bound) within 60 MiB of part buffers. The stored object does not
 * depend on the part size. Limit: 10,000 parts × 12 MiB caps one stored data file at 117 GiB; set a
 * larger partSize (and expect (concurrency + 1) × partSize of memory) for bigger raw files.
 */
export const COMPRESSION_DEFAULTS: CompressionSettings = {
  codec: 'zstd',
  level: 3,
  frameSize: 2 * MiB,
  workers: 2,
  partSize: 12 * MiB,
  uploadConcurrency: 4,
}

/** Resolve the effective settings for one file of one use case, and check them against the file's block size. */
export function resolveCompression(cfg: CompressionConfig | undefined, kind: FileKind, useCase: UseCase, blockSize = DEFAULT_BLOCK_SIZE[kind]): CompressionSettings {
  const kindCfg = cfg?.[kind]
  const merged = { ...COMPRESSION_DEFAULTS, ...strip(cfg?.default), ...strip(kindCfg), ...strip(kindCfg?.[useCase]) }
  delete (merged as Record<string, unknown>).build
  delete (merged as Record<string, unknown>).pause
  const settings = compressionSettingsSchema.parse(merged) as CompressionSettings
  if (settings.frameSize % blockSize !== 0) {
    throw new InvalidArgumentError(
      `compression.${kind}.${useCase}.frameSize: must be a multiple of the ${kind} block size ${blockSize}, found ${settings.frameSize}`,
    )
  }
  return settings
}

function strip<T extends object>(o: T | undefined): Partial<T> {
  if (!o) return {}
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && typeof v !== 'object')) as Partial<T>
}
