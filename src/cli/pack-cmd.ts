/** `snapswarm pack` and `snapswarm unpack`. */
import { open, stat } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { decodeHeader, HEADER_LIMITS } from '../format/header.ts'
import { resolve } from '../format/mapping.ts'
import { dataFileName, headerFileName } from '../format/layout.ts'
import { DEFAULT_BLOCK_SIZE, DEFAULT_FRAME_SIZE, NIL_BUILD_ID, type FileKind } from '../format/types.ts'
import { randomBuildId } from '../format/uuid.ts'
import { writeFramedRange } from '../framing/local-reader.ts'
import { pack } from '../framing/pack.ts'
import { UsageError, buildIdFlag, choiceFlag, intFlag, requiredString } from './args.ts'
import type { CommandInput } from './command.ts'
import { openRegularFile, readRegularFile } from '../util/regular-file.ts'
import { ProgressBar, formatBytes } from './progress.ts'

const KINDS = ['memfile', 'rootfs'] as const
const CODECS = ['zstd', 'lz4', 'none'] as const

export async function packCommand({ values, positionals }: CommandInput): Promise<number> {
  const kind = choiceFlag(values, 'kind', KINDS, 'memfile')
  const codec = choiceFlag(values, 'codec', CODECS, 'zstd')
  const level = intFlag(values, 'level', codec === 'zstd' ? 3 : 0)
  if (codec === 'zstd' && (level < 1 || level > 19)) throw new UsageError(`--level: zstd levels are 1-19, found ${level}`)
  const input = positionals[0]
  const size = (await stat(input)).size
  const bar = new ProgressBar(`pack ${kind}`, size)
  const started = performance.now()
  const result = await pack({
    input,
    outDir: requiredString(values, 'out'),
    kind,
    codec,
    level,
    buildId: buildIdFlag(values, 'build-id') ?? randomBuildId(),
    frameSize: intFlag(values, 'frame-size', DEFAULT_FRAME_SIZE),
    blockSize: intFlag(values, 'block-size', DEFAULT_BLOCK_SIZE[kind]),
    workers: intFlag(values, 'workers', Math.max(2, availableParallelism())),
    onProgress: (readU, emittedC) => bar.update(readU, formatBytes(emittedC)),
  })
  bar.done()
  const secs = (performance.now() - started) / 1000
  const sizeC = result.table.compressedSize
  process.stdout.write(
    `packed ${input} → ${result.dataPath}\n` +
      `  build ${result.header.buildId}  codec ${codec}${codec === 'zstd' ? `-${level}` : ''}  frames ${result.table.frames.length}\n` +
      `  ${formatBytes(result.size)} → ${formatBytes(sizeC)} (ratio ${(result.size / Math.max(1, sizeC)).toFixed(2)}×) in ${secs.toFixed(2)} s\n` +
      `  sha256 ${Buffer.from(result.sha256).toString('hex')}\n  header ${result.headerPath} (V${result.header.version})\n`,
  )
  return 0
}

export async function unpackCommand({ values, positionals }: CommandInput): Promise<number> {
  const workers = intFlag(values, 'workers', 2)
  const kind: FileKind = choiceFlag(values, 'kind', KINDS, 'memfile')
  const dir = positionals[0]
  const header = decodeHeader(await readRegularFile(join(dir, headerFileName(kind)), HEADER_LIMITS.maxHeaderBytes))
  const info = header.builds.get(header.buildId)
  const dataPath = join(dir, dataFileName(kind, info?.frames.codec ?? 'none'))
  const data = (await openRegularFile(dataPath)).handle
  const out = await open(requiredString(values, 'out'), 'w').catch(async (err) => {
    await data.close()
    throw err
  })
  const bar = new ProgressBar(`unpack ${kind}`, header.size)
  try {
    const step = 16 * 1024 * 1024
    for (let pos = 0; pos < header.size; ) {
      const r = resolve(header, pos)
      const n = Math.min(step, r.remaining, header.size - pos)
      if (r.buildId !== NIL_BUILD_ID && r.buildId !== header.buildId) {
        throw new UsageError(`the header maps ${pos} to ancestor build ${r.buildId}, which is not in ${dir}; read layered builds with 'snapswarm read --storage'`)
      }
      if (r.buildId === NIL_BUILD_ID) await out.write(Buffer.alloc(n), 0, n, pos)
      else await writeFramedRange(data, info?.frames ?? null, r.storageOffset, n, out, pos, { workers })
      pos += n
      bar.update(pos)
    }
    await out.truncate(header.size)
  } finally {
    bar.done()
    await out.close()
    await data.close()
  }
  return 0
}
