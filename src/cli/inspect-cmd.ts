/** `snapswarm inspect <header-file> [--json]` (issue 2); `--storage` (issue 3) is added by the storage CLI. */
import { readFile } from 'node:fs/promises'
import { decodeHeader, type Header } from '../format/header.ts'
import { parse } from './args.ts'
import { formatBytes } from './progress.ts'

export function headerToJson(h: Header): Record<string, unknown> {
  return {
    version: h.version,
    blockSize: h.blockSize,
    size: h.size,
    generation: h.generation,
    buildId: h.buildId,
    baseBuildId: h.baseBuildId,
    flags: h.incomplete ? 1 : 0,
    builds: [...h.builds.values()].map((b) => ({
      buildId: b.buildId,
      fileSize: b.fileSize,
      sha256: Buffer.from(b.sha256).toString('hex'),
      codec: b.frames.codec,
      frames: b.frames.frames.length,
      compressedSize: b.frames.compressedSize,
      ...(b.digests ? { chunkDigests: { chunkSize: b.digests.chunkSize, chunks: b.digests.count } } : {}),
    })),
    mappings: h.mappings.map((m) => ({ offset: m.offset, length: m.length, buildId: m.buildId, buildStorageOffset: m.buildStorageOffset })),
  }
}

export function headerSummary(h: Header): string {
  const lines = [
    `header V${h.version}${h.incomplete ? ' (incomplete: pending upload)' : ''}`,
    `  build ${h.buildId}  base ${h.baseBuildId}  generation ${h.generation}`,
    `  virtual size ${formatBytes(h.size)} (${h.size} bytes), block size ${h.blockSize}, ${h.mappings.length} mappings`,
  ]
  for (const b of h.builds.values()) {
    const frames = b.frames.frames
    const sizeU = frames.reduce((s, f) => s + f.sizeU, 0)
    const ratio = b.frames.compressedSize > 0 ? (sizeU / b.frames.compressedSize).toFixed(2) : '-'
    lines.push(
      `  layer ${b.buildId}: ${formatBytes(b.fileSize)}, ${b.frames.codec}, ${frames.length} frames, ` +
        `${formatBytes(b.frames.compressedSize)} stored (ratio ${ratio}×), sha256 ${Buffer.from(b.sha256).toString('hex').slice(0, 16)}…` +
          (b.digests ? `, ${b.digests.count} chunk digests of ${formatBytes(b.digests.chunkSize)}` : ''),
    )
  }
  return `${lines.join('\n')}\n`
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, 1)
  const header = decodeHeader(await readFile(positionals[0]))
  process.stdout.write(values.json ? `${JSON.stringify(headerToJson(header))}\n` : headerSummary(header))
  return 0
}
