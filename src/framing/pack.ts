/**
 * `pack`: frame one local file into a single-layer build on local disk — `<out>/<name><suffix>` plus
 * `<out>/<name>.header` (V4 for a compressed file, V3 for `none`), laid out like one build's prefix in
 * the bucket so the directory can be pushed or inspected as is.
 */
import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidArgumentError } from '../errors.ts'
import { encodeHeader, type Header } from '../format/header.ts'
import { singleLayerHeader } from '../format/mapping.ts'
import { dataFileName, headerFileName } from '../format/layout.ts'
import type { BuildId, CodecName, FileKind } from '../format/types.ts'
import { openRegularFile } from '../util/regular-file.ts'
import { frameFile, framedInfo, type FramingResult } from './framer.ts'
import { zeroBlockFor } from './holes.ts'

export interface PackOptions {
  readonly input: string
  readonly outDir: string
  readonly kind: FileKind
  readonly buildId: BuildId
  readonly codec: CodecName
  readonly level: number
  readonly frameSize: number
  readonly blockSize: number
  readonly workers: number
  readonly onProgress?: (readU: number, emittedC: number) => void
  readonly signal?: AbortSignal
  /**
   * Leave all-zero blocks out as holes (nil mappings), as push and pause do. Off by default: then
   * the data file decodes with stock tools to the input itself.
   */
  readonly elideZeros?: boolean
}

export interface PackResult extends FramingResult {
  readonly dataPath: string
  readonly headerPath: string
  readonly header: Header
}

export function checkGeometry(frameSize: number, blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize <= 0 || (blockSize & (blockSize - 1)) !== 0) {
    throw new InvalidArgumentError(`block size must be a positive power of two, found ${blockSize}`)
  }
  if (!Number.isInteger(frameSize) || frameSize <= 0 || frameSize % blockSize !== 0) {
    // A block-sized read must land inside exactly one frame (docs/FORMAT.md).
    throw new InvalidArgumentError(`frame size must be a positive multiple of the block size ${blockSize}, found ${frameSize}`)
  }
}

export async function pack(opts: PackOptions): Promise<PackResult> {
  checkGeometry(opts.frameSize, opts.blockSize)
  await mkdir(opts.outDir, { recursive: true })
  const dataPath = join(opts.outDir, dataFileName(opts.kind, opts.codec))
  const headerPath = join(opts.outDir, headerFileName(opts.kind))
  const tmp = `${dataPath}.tmp.${process.pid}`
  // A regular file only (a FIFO or a device would block or never end), read up to the size it had when opened.
  const { handle: input, identity } = await openRegularFile(opts.input, { what: 'input' })
  let framed: FramingResult
  try {
    const out = await open(tmp, 'w')
    try {
      let pos = 0
      framed = await frameFile(
        input,
        {
          codec: opts.codec,
          level: opts.level,
          frameSize: opts.frameSize,
          workers: opts.workers,
          zeroBlock: opts.elideZeros ? zeroBlockFor(opts.blockSize, opts.frameSize) : undefined,
          signal: opts.signal,
          onProgress: opts.onProgress,
        },
        async (stored) => {
          await out.write(stored, 0, stored.byteLength, pos)
          pos += stored.byteLength
        },
        { offset: 0, length: identity.size },
      )
      await out.sync()
    } finally {
      await out.close()
    }
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  } finally {
    await input.close()
  }
  const info = framedInfo(opts.buildId, opts.codec, framed)
  const header = singleLayerHeader({ buildId: opts.buildId, blockSize: opts.blockSize, info, empty: framed.holes })
  const headerBytes = encodeHeader(header)
  await rename(tmp, dataPath)
  await writeFile(`${headerPath}.tmp`, headerBytes)
  await rename(`${headerPath}.tmp`, headerPath) // header last: its presence means "complete"
  return { ...framed, dataPath, headerPath, header }
}
