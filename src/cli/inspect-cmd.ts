/** `snapswarm inspect <header-file> [--json]`; `--storage` is added by the storage CLI. */
import { decodeHeader, HEADER_LIMITS, type Header } from '../format/header.ts'
import { readRegularFile } from '../util/regular-file.ts'
import type { FileKind } from '../format/types.ts'
import { type VerifyReport, verifyStoredHeader } from '../read/verify-stored.ts'
import type { ObjectStore } from '../storage/store.ts'
import { UsageError } from './args.ts'
import type { CommandInput } from './command.ts'
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
    const sha = `sha256 ${Buffer.from(b.sha256).toString('hex').slice(0, 16)}…`
    if (b.frames.codec === 'none') {
      const checks = b.digests ? `${b.digests.count} chunk digests of ${formatBytes(b.digests.chunkSize)}` : 'no chunk digests (lazy reads unverified)'
      lines.push(`  layer ${b.buildId}: ${formatBytes(b.fileSize)}, raw, ${sha}, ${checks}`)
      continue
    }
    lines.push(
      `  layer ${b.buildId}: ${formatBytes(b.fileSize)}, ${b.frames.codec}, ${frames.length} frames, ` +
        `${formatBytes(b.frames.compressedSize)} stored (ratio ${ratio}×), ${sha}`,
    )
  }
  return `${lines.join('\n')}\n`
}

export async function inspectCommand({ values, positionals }: CommandInput): Promise<number> {
  for (const flag of ['verify', 'allow-unverifiable', 'gcs-endpoint', 'config']) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} applies to a stored build: give --storage URL and a build id`)
  }
  // Bounded by the format's header size limit, and a regular file only: `inspect /dev/zero` ends at once.
  const header = decodeHeader(await readRegularFile(positionals[0], HEADER_LIMITS.maxHeaderBytes, 'header file'))
  process.stdout.write(values.json ? `${JSON.stringify(headerToJson(header))}\n` : headerSummary(header))
  return 0
}

/**
 * `inspect --storage URL <id> --verify` for one file kind: verify every layer, print what was checked,
 * and say whether the command must fail. A layer nothing can be checked against (a legacy V3 raw
 * build) fails it too, unless `allowUnverifiable` accepts that: "verified" must never mean "unchecked".
 */
export async function verifyStoredKind(
  store: ObjectStore,
  kind: FileKind,
  header: Header,
  opts: { json: boolean; allowUnverifiable: boolean },
): Promise<{ report: VerifyReport; failed: boolean }> {
  const report = await verifyStoredHeader(store, kind, header)
  let failed = false
  for (const f of report.failures) {
    failed = true
    process.stderr.write(`snapswarm: ERR_VERIFY_FAILED: ${f.object}: ${f.detail}\n`)
  }
  for (const l of report.layers) {
    if (l.status === 'unverifiable') {
      if (!opts.allowUnverifiable) {
        failed = true
        process.stderr.write(`snapswarm: ERR_UNVERIFIABLE: ${l.object}: ${l.checked}; pass --allow-unverifiable to accept that\n`)
      } else if (!opts.json) process.stdout.write(`  NOT verified (allowed by --allow-unverifiable) ${l.object}: ${l.checked}\n`)
    } else if (!opts.json) {
      process.stdout.write(`  verified ${l.object}: ${l.checked}, ${formatBytes(l.bytes)}, sha256 ${l.sha256}\n`)
    }
  }
  return { report, failed }
}
