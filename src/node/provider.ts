/**
 * What this node serves to peers (DESIGN §8): the builds it originated. While a build is pending its
 * header is served with the incomplete flag and its frames from the local framed copy; once uploaded
 * every answer is USE_STORAGE (the switch signal); after a failed upload, UPLOAD_FAILED — never
 * "use storage" for a build that is not there (DESIGN §9).
 */
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeHeader } from '../format/header.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import type { BlobAnswer, FrameRange, FramesAnswer, HeaderAnswer, PeerContentProvider } from '../p2p/index.ts'
import type { LocalBuild, LocalBuilds } from './local-builds.ts'

type NotOkStatus = 'NOT_AVAILABLE' | 'USE_STORAGE' | 'UPLOAD_FAILED'

export class LocalBuildProvider implements PeerContentProvider {
  private readonly builds: LocalBuilds
  /** Encoded pending headers, built once per file: headers are immutable once derived. */
  private readonly encoded = new Map<string, Uint8Array>()

  constructor(builds: LocalBuilds) {
    this.builds = builds
  }

  async getHeader(buildId: BuildId, kind: FileKind): Promise<HeaderAnswer> {
    const b = this.builds.get(buildId)
    const refusal = statusOf(b)
    if (refusal) return { status: refusal }
    const file = b!.files.get(kind)
    if (!file) return { status: 'NOT_AVAILABLE' }
    const key = `${buildId}/${kind}`
    let bytes = this.encoded.get(key)
    if (!bytes) this.encoded.set(key, (bytes = encodeHeader(file.header)))
    return { status: 'OK', header: bytes, pending: true }
  }

  async getFrames(buildId: BuildId, kind: FileKind, ranges: readonly FrameRange[]): Promise<FramesAnswer> {
    const b = this.builds.get(buildId)
    const refusal = statusOf(b)
    if (refusal) return { status: refusal }
    const file = b!.files.get(kind)
    if (!file) return { status: 'NOT_AVAILABLE' }
    const table = file.info.frames
    const sizeC = table.codec === 'none' ? file.info.fileSize : table.compressedSize
    // Serve only what lies inside the local data file; a range past its end is a peer's mistake.
    if (ranges.some((r) => r.startC < 0 || r.sizeC <= 0 || r.startC + r.sizeC > sizeC)) return { status: 'NOT_AVAILABLE' }
    const fh = await open(file.dataPath, 'r')
    return {
      status: 'OK',
      batch: {
        async frame(i) {
          const r = ranges[i]
          const buf = Buffer.allocUnsafe(r.sizeC)
          let done = 0
          while (done < r.sizeC) {
            const { bytesRead } = await fh.read(buf, done, r.sizeC - done, r.startC + done)
            if (bytesRead === 0) throw new Error(`local data file of ${buildId} ended at ${r.startC + done}`)
            done += bytesRead
          }
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
    if (name !== 'snapfile' && name !== 'metadata.json') return { status: 'NOT_AVAILABLE' }
    if (!b!.request.files[name === 'snapfile' ? 'snapfile' : 'metadata']) return { status: 'NOT_AVAILABLE' }
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

function statusOf(b: LocalBuild | undefined): NotOkStatus | null {
  if (!b || b.state === 'framing') return 'NOT_AVAILABLE'
  if (b.state === 'uploaded') return 'USE_STORAGE'
  if (b.state === 'failed') return 'UPLOAD_FAILED'
  return null
}
