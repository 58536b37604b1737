/**
 * Upload one build to object storage (issue 3, the `build` and `pause` use cases): each data file is
 * framed, compressed and uploaded in parallel parts; blobs go alongside; the headers are written LAST,
 * with final frame tables and SHA-256 checksums — a header's presence means "this build is complete"
 * (DESIGN §3). On failure or cancellation no header is written and nothing of this attempt remains,
 * so a retry of the same build starts clean.
 */
import { open } from 'node:fs/promises'
import { readFile } from 'node:fs/promises'
import { type CompressionConfig, type UseCase, resolveCompression } from '../config/compression.ts'
import { InvalidArgumentError, SnapswarmError } from '../format/errors.ts'
import { FrameTable } from '../format/frame-table.ts'
import { type BuildInfo, type Header, decodeHeader, encodeHeader } from '../format/header.ts'
import { layerHeader } from '../format/mapping.ts'
import { type BuildId, type FileKind, DEFAULT_BLOCK_SIZE, FILE_KINDS, codecSuffix, storageName } from '../format/types.ts'
import { frameFile } from '../pack/framer.ts'
import type { ObjectStore } from '../storage/store.ts'
import { PartWriter } from './part-writer.ts'

export interface ByteRange {
  readonly start: number
  readonly end: number
}

export interface BuildFiles {
  memfile?: string
  rootfs?: string
  snapfile?: string
  metadata?: string
}

export interface UploadProgress {
  readonly kind: FileKind
  readonly total: number
  readonly read: number
  readonly compressed: number
  readonly uploaded: number
}

export interface UploadBuildOptions {
  readonly store: ObjectStore
  readonly buildId: BuildId
  readonly parent?: BuildId
  readonly files: BuildFiles
  /** With a parent: the virtual byte ranges each diff file holds, in order (block-aligned). */
  readonly dirty?: Partial<Record<FileKind, ByteRange[]>>
  readonly useCase: UseCase
  readonly compression?: CompressionConfig
  readonly blockSize?: Partial<Record<FileKind, number>>
  readonly signal?: AbortSignal
  readonly onProgress?: (p: UploadProgress) => void
}

export class BuildExistsError extends SnapswarmError {
  constructor(buildId: BuildId, name: string) {
    super('ERR_BUILD_EXISTS', `build ${buildId} is already complete in storage (${name} exists)`)
  }
}

export const headerName = (buildId: BuildId, kind: FileKind) => `${buildId}/${storageName(kind)}.header`
export const dataName = (buildId: BuildId, kind: FileKind, codec: FrameTable['codec']) => `${buildId}/${storageName(kind)}${codecSuffix(codec)}`

export async function uploadBuild(opts: UploadBuildOptions): Promise<Map<FileKind, Header>> {
  const { store, buildId } = opts
  const kinds = FILE_KINDS.filter((k) => opts.files[k])
  if (kinds.length === 0) throw new InvalidArgumentError('a build needs at least one of memfile, rootfs')
  for (const kind of kinds) if (await store.exists(headerName(buildId, kind))) throw new BuildExistsError(buildId, headerName(buildId, kind))
  const written: string[] = []
  try {
    const headers = new Map<FileKind, Header>()
    for (const kind of kinds) headers.set(kind, await uploadFile(opts, kind, written))
    for (const blob of ['snapfile', 'metadata'] as const) {
      const path = opts.files[blob]
      if (!path) continue
      const name = `${buildId}/${blob === 'metadata' ? 'metadata.json' : 'snapfile'}`
      await store.put(name, await readFile(path), { signal: opts.signal })
      written.push(name)
    }
    opts.signal?.throwIfAborted()
    for (const [kind, header] of headers) {
      await store.put(headerName(buildId, kind), encodeHeader(header), { signal: opts.signal })
      written.push(headerName(buildId, kind))
    }
    return headers
  } catch (err) {
    // Best effort: remove what this attempt completed so no half build is left behind.
    await Promise.allSettled(written.map((n) => store.delete(n)))
    throw err
  }
}

async function uploadFile(opts: UploadBuildOptions, kind: FileKind, written: string[]): Promise<Header> {
  const parent = opts.parent ? decodeHeader(await opts.store.get(headerName(opts.parent, kind), { signal: opts.signal })) : null
  const blockSize = parent?.blockSize ?? opts.blockSize?.[kind] ?? DEFAULT_BLOCK_SIZE[kind]
  const settings = resolveCompression(opts.compression, kind, opts.useCase, blockSize)
  const fh = await open(opts.files[kind]!, 'r')
  try {
    const size = (await fh.stat()).size
    const dirty = parent ? checkDirty(opts.dirty?.[kind], size, parent, kind) : undefined
    const name = dataName(opts.buildId, kind, settings.codec)
    const upload = opts.store.startUpload(name, { metadata: { 'uncompressed-size': String(size) } })
    let progress = { kind, total: size, read: 0, compressed: 0, uploaded: 0 }
    const report = (p: Partial<UploadProgress>) => {
      progress = { ...progress, ...p }
      opts.onProgress?.(progress)
    }
    const writer = new PartWriter(upload, {
      partSize: settings.partSize,
      concurrency: settings.uploadConcurrency,
      signal: opts.signal,
      onUploaded: (uploaded) => report({ uploaded }),
    })
    let framed: Awaited<ReturnType<typeof frameFile>>
    try {
      framed = await frameFile(fh, { ...settings, signal: opts.signal, onProgress: (read, compressed) => report({ read, compressed }) }, (stored) => writer.write(stored))
      await writer.finish()
    } catch (err) {
      await writer.abort().catch(() => {})
      throw err
    }
    written.push(name)
    const info: BuildInfo = {
      buildId: opts.buildId,
      fileSize: size,
      sha256: framed.sha256,
      frames: settings.codec === 'none' ? FrameTable.fromSizes('none', []) : framed.table,
    }
    return parent ? layerHeader(parent, { buildId: opts.buildId, dirty: dirty!, info }) : singleLayerHeader(opts.buildId, blockSize, info)
  } finally {
    await fh.close()
  }
}

function singleLayerHeader(buildId: BuildId, blockSize: number, info: BuildInfo): Header {
  const compressed = info.frames.codec !== 'none'
  return {
    version: compressed ? 4 : 3,
    blockSize,
    size: info.fileSize,
    generation: 0,
    buildId,
    baseBuildId: buildId,
    incomplete: false,
    builds: compressed ? new Map([[buildId, info]]) : new Map(),
    mappings: info.fileSize > 0 ? [{ offset: 0, length: info.fileSize, buildId, buildStorageOffset: 0 }] : [],
  }
}

function checkDirty(ranges: ByteRange[] | undefined, diffSize: number, parent: Header, kind: FileKind): ByteRange[] {
  if (!ranges) throw new InvalidArgumentError(`--dirty is required for ${kind} when a parent is given`)
  let total = 0
  let prevEnd = 0
  for (const r of ranges) {
    if (!(r.start >= prevEnd && r.end > r.start && r.end <= parent.size)) {
      throw new InvalidArgumentError(`dirty ranges of ${kind} must be sorted, non-overlapping and inside the parent's size ${parent.size}; found ${r.start}-${r.end}`)
    }
    if (r.start % parent.blockSize !== 0 || (r.end % parent.blockSize !== 0 && r.end !== parent.size)) {
      throw new InvalidArgumentError(`dirty range ${r.start}-${r.end} of ${kind} is not aligned to the block size ${parent.blockSize}`)
    }
    total += r.end - r.start
    prevEnd = r.end
  }
  if (total !== diffSize) throw new InvalidArgumentError(`the dirty ranges of ${kind} cover ${total} bytes but the diff file holds ${diffSize}`)
  return ranges
}

/** Parse `0-2097152,8388608-10485760` (the `--dirty` flag). */
export function parseRanges(text: string): ByteRange[] {
  return text.split(',').filter(Boolean).map((part) => {
    const m = /^(\d+)-(\d+)$/.exec(part.trim())
    if (!m) throw new InvalidArgumentError(`expected START-END byte ranges, found '${part}'`)
    return { start: Number(m[1]), end: Number(m[2]) }
  })
}
