/**
 * Compression settings (DESIGN §6, issue 3 item 4): codec, level, frame size, encode workers, part size
 * and upload concurrency, per file type and per use case. A setting resolves as
 * `default` ← `<kind>` ← `<kind>.<useCase>`; "codec: none" is an instant rollback — readers never
 * consult this config, they follow each build's header, so old compressed builds stay readable.
 */
import { z } from 'zod'
import { InvalidArgumentError } from '../format/errors.ts'
import { DEFAULT_BLOCK_SIZE, type CodecName, type FileKind } from '../format/types.ts'

export type UseCase = 'build' | 'pause'
export const USE_CASES: readonly UseCase[] = ['build', 'pause']

const MiB = 1024 * 1024
/** GCS compose and S3-style multipart both want parts ≥ 5 MiB (except the last) and ≤ 10,000 parts. */
export const MIN_PART_SIZE = 5 * MiB
export const MAX_PART_SIZE = 5 * 1024 * MiB
export const MAX_FRAME_SIZE = 64 * MiB

export const compressionSettingsSchema = z
  .object({
    codec: z.enum(['none', 'zstd', 'lz4']),
    level: z.number().int().min(1).max(19),
    frameSize: z.number().int().positive().max(MAX_FRAME_SIZE),
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

/** e2b's "level 2" default is libzstd level 3 (DESIGN §5); 50 MiB parts as in e2b (DESIGN §6). */
export const COMPRESSION_DEFAULTS: CompressionSettings = {
  codec: 'zstd',
  level: 3,
  frameSize: 2 * MiB,
  workers: 2,
  partSize: 50 * MiB,
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
