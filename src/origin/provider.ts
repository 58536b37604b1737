/**
 * What this node serves to peers (docs/ARCHITECTURE.md, "The pause path"): the builds it originated. While a build is pending its
 * header is served with the incomplete flag and its frames from the local framed copy. Once uploaded,
 * a header request is answered USE_STORAGE (the switch signal: final headers come from storage only),
 * while frames are still served from the local copy until it is evicted — that is load the bucket
 * does not take. After a failed upload, UPLOAD_FAILED; never "use storage" for a build that is not
 * there. Only exact local frames are served: a request for another codec than the local
 * copy's, or a range that is not one frame of the local table (another geometry), is NOT_AVAILABLE,
 * so peers fall through to the next source. The codec check matters most for a raw local copy, where
 * any in-bounds range "fits": without it a zstd range of the upload's geometry got raw bytes, which
 * the reader's verification rejected and blamed on this node.
 *
 * Frames of any other build (or of an own build in another geometry than the local copy's) come from
 * the node's frame store when it holds them (cached-frames.ts): builds this node has read.
 */
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import type { FrameTable } from '../format/frame-table.ts'
import { encodeHeader } from '../format/header.ts'
import { blobKindOf, traceKindOf } from '../format/layout.ts'
import type { BuildId, CodecName, FileKind } from '../format/types.ts'
import type { BlobAnswer, FrameRange, FramesAnswer, FramesServeOptions, FrameWithHeader, HeaderAnswer, HeaderOptions, PeerContentProvider } from '../p2p/index.ts'
import { readExactly } from '../util/file-io.ts'
import type { LocalBuild, LocalBuilds, LocalFile } from './local-builds.ts'

type NotOkStatus = 'NOT_AVAILABLE' | 'USE_STORAGE' | 'UPLOAD_FAILED'

/**
 * What the provider asks of the node's cached-frame server (src/cluster/cached-frames.ts, a layer
 * above this one, so only its shape is named here): frames of a build this node has read.
 */
export interface CachedFrames {
  getFrames(buildId: BuildId, kind: FileKind, codec: CodecName | undefined, ranges: readonly FrameRange[], signal?: AbortSignal, opts?: FramesServeOptions): Promise<FramesAnswer>
}

export class LocalBuildProvider implements PeerContentProvider {
  private readonly builds: LocalBuilds
  private readonly cached: CachedFrames | undefined
  /** Encoded pending headers, built once per file: headers are immutable once derived. */
  private readonly encoded = new Map<string, Uint8Array>()
  /** Access traces recorded for pending builds (src/prefetch/traces.ts), served as blobs. */
  private readonly traces: { heldBlob(buildId: BuildId, name: string): Uint8Array | undefined } | undefined

  constructor(builds: LocalBuilds, cached?: CachedFrames, traces?: LocalBuildProvider['traces']) {
    this.builds = builds
    this.cached = cached
    this.traces = traces
  }

  /**
   * Until the node has recovered its pause records after a (re)start it cannot tell which builds it
   * originated: an unknown build then answers BUSY (ask again), not NOT_AVAILABLE, which a reader
   * takes as a definite "no".
   */
  private recovering = true

  /** The pause records are recovered: unknown builds are definitely not this node's. */
  recovered(): void {
    this.recovering = false
  }

  async getHeader(buildId: BuildId, kind: FileKind, _signal?: AbortSignal, opts?: HeaderOptions): Promise<HeaderAnswer> {
    const b = this.builds.get(buildId)
    if (!b && this.recovering) return { status: 'BUSY' }
    // Still framing: no header yet, but soon; BUSY keeps a reader waiting where NOT_AVAILABLE is a "no".
    if (b?.state === 'framing') return { status: 'BUSY' }
    const refusal = statusOf(b)
    if (refusal) return { status: refusal }
    const file = b!.files.get(kind)
    if (!file) return { status: 'NOT_AVAILABLE' }
    const key = `${buildId}/${kind}`
    const bytes = this.encoded.get(key) ?? encodeHeader(file.header)
    this.encoded.set(key, bytes)
    const frame = opts?.firstReadAt === undefined ? undefined : await firstFrame(file, opts.firstReadAt).catch(() => undefined)
    return frame ? { status: 'OK', header: bytes, pending: true, frame } : { status: 'OK', header: bytes, pending: true }
  }

  async getFrames(buildId: BuildId, kind: FileKind, codec: CodecName | undefined, ranges: readonly FrameRange[], signal?: AbortSignal, opts?: FramesServeOptions): Promise<FramesAnswer> {
    const b = this.builds.get(buildId)
    const own = b ? await this.ownFrames(b, kind, codec, ranges) : ({ status: 'NOT_AVAILABLE' } as const)
    if (own.status !== 'NOT_AVAILABLE' || !this.cached || b?.state === 'framing' || b?.state === 'failed') return own
    return this.cached.getFrames(buildId, kind, codec, ranges, signal, opts)
  }

  private async ownFrames(b: LocalBuild, kind: FileKind, codec: CodecName | undefined, ranges: readonly FrameRange[]): Promise<FramesAnswer> {
    const buildId = b.id
    // Frames stay servable after the upload ended (uploaded: less load on the bucket; failed: readers
    // configured to keep reading from the live origin). Headers carry the switch/failure signal.
    const refusal = b.state === 'uploaded' || b.state === 'failed' ? null : statusOf(b)
    if (refusal) return { status: refusal }
    const file = b.files.get(kind)
    if (!file) return { status: 'NOT_AVAILABLE' }
    // undefined: a client from before the codec was on the wire; the ranges alone decide, as they did then.
    if (codec !== undefined && codec !== file.info.frames.codec) return { status: 'NOT_AVAILABLE' }
    if (!ranges.every((r) => isLocalFrame(file.info.frames, file.info.fileSize, r))) return { status: 'NOT_AVAILABLE' }
    const fh = await open(file.dataPath, 'r')
    return {
      status: 'OK',
      batch: {
        async frame(i) {
          const r = ranges[i]
          const buf = Buffer.allocUnsafe(r.sizeC)
          await readExactly(fh, buf, r.startC, (done) => new Error(`local data file of ${buildId} ended at ${r.startC + done}`))
          return buf
        },
        release() {
          void fh.close()
        },
      },
    }
  }

  async getBlob(buildId: BuildId, name: string): Promise<BlobAnswer> {
    const b = this.builds.get(buildId)
    const refusal = statusOf(b)
    if (refusal) return { status: refusal }
    // A pending build's access trace, while its origin holds one (`memfile.prefetch`, `rootfs.ext4.prefetch`).
    if (traceKindOf(name)) {
      const bytes = this.traces?.heldBlob(buildId, name)
      return bytes ? { status: 'OK', bytes } : { status: 'NOT_AVAILABLE' }
    }
    const blob = blobKindOf(name)
    if (!blob || !b!.request.files[blob]) return { status: 'NOT_AVAILABLE' }
    const fh = await open(join(this.builds.buildDir(buildId), name), 'r')
    try {
      return { status: 'OK', bytes: await fh.readFile() }
    } finally {
      await fh.close()
    }
  }

  /** Forget cached encodings of a build (after eviction). */
  forget(buildId: BuildId): void {
    for (const k of this.encoded.keys()) if (k.startsWith(buildId)) this.encoded.delete(k)
  }
}

/**
 * The stored frame of a pending file's own data file that serves file offset `at` (sent with its
 * header: the resume's first read), or undefined when that offset is another layer's, a hole, past the
 * end, or the copy is raw (its reads are chunks, not frames).
 */
async function firstFrame(file: LocalFile, at: number): Promise<FrameWithHeader | undefined> {
  const table = file.info.frames
  if (table.codec === 'none') return undefined
  const m = file.header.mappings.find((x) => at >= x.offset && at < x.offset + x.length)
  if (!m || m.buildId !== file.header.buildId) return undefined
  const i = table.indexOf(m.buildStorageOffset + (at - m.offset))
  if (i < 0) return undefined
  const f = table.frames[i]
  const fh = await open(file.dataPath, 'r')
  try {
    const bytes = Buffer.allocUnsafe(f.sizeC)
    await readExactly(fh, bytes, f.startC, (done) => new Error(`local data file ended at ${f.startC + done}`))
    return { startC: f.startC, sizeC: f.sizeC, bytes }
  } finally {
    await fh.close()
  }
}

function isLocalFrame(table: FrameTable, fileSize: number, r: FrameRange): boolean {
  if (r.startC < 0 || r.sizeC <= 0) return false
  if (table.codec === 'none') return r.startC + r.sizeC <= fileSize
  const f = table.frames[table.indexOfCompressed(r.startC)]
  return f !== undefined && f.startC === r.startC && f.sizeC === r.sizeC
}

function statusOf(b: LocalBuild | undefined): NotOkStatus | null {
  if (!b || b.state === 'framing') return 'NOT_AVAILABLE'
  if (b.state === 'uploaded') return 'USE_STORAGE'
  if (b.state === 'failed') return 'UPLOAD_FAILED'
  return null
}
