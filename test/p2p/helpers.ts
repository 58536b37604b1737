/** Shared fixtures for the p2p tests: in-memory content, nodes on 127.0.0.1 with throwaway data dirs. */
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CodecName, FileKind } from '../../src/format/types.ts'
import { createSnapswarmPeer, type SnapswarmPeer, type SnapswarmPeerOptions } from '../../src/p2p/index.ts'
import type { BlobAnswer, FrameRange, FramesAnswer, HeaderAnswer, NotOk, PeerContentProvider } from '../../src/p2p/content/index.ts'

/** Serves builds held in memory; `hold` makes every frame wait (for BUSY and stall tests). */
export class MemoryProvider implements PeerContentProvider {
  readonly headers = new Map<string, { header: Uint8Array; pending: boolean }>()
  readonly data = new Map<string, Uint8Array>()
  readonly blobs = new Map<string, Uint8Array>()
  readonly statusOf = new Map<string, NotOk>()
  /** Codec of each build's data (by `buildId/kind`); a request naming another codec is NOT_AVAILABLE. */
  readonly codecs = new Map<string, CodecName>()
  /** The codec each getFrames call was asked for (undefined = the client did not say). */
  readonly askedCodecs: (CodecName | undefined)[] = []
  hold: Promise<void> | undefined
  /** Frames from `index` on (within a batch) wait for `gate`: the earlier ones are served at once. */
  holdFrom: { index: number; gate: Promise<void> } | undefined
  calls = 0

  /** A build with a random compressed data file cut into `frames` frames of `frameSize` bytes. */
  addBuild(kind: FileKind, frames: number, frameSize: number, pending = true, codec: CodecName = 'zstd'): { buildId: string; ranges: FrameRange[]; data: Uint8Array } {
    const buildId = randomUUID()
    const data = new Uint8Array(randomBytes(frames * frameSize))
    this.data.set(`${buildId}/${kind}`, data)
    this.codecs.set(`${buildId}/${kind}`, codec)
    this.headers.set(`${buildId}/${kind}`, { header: new Uint8Array(randomBytes(300)), pending })
    const ranges = Array.from({ length: frames }, (_, i) => ({ startC: i * frameSize, sizeC: frameSize }))
    return { buildId, ranges, data }
  }

  async getHeader(buildId: string, kind: FileKind): Promise<HeaderAnswer> {
    this.calls++
    const forced = this.statusOf.get(buildId)
    if (forced) return { status: forced }
    const h = this.headers.get(`${buildId}/${kind}`)
    return h ? { status: 'OK', ...h } : { status: 'NOT_AVAILABLE' }
  }

  async getFrames(buildId: string, kind: FileKind, codec: CodecName | undefined, ranges: readonly FrameRange[]): Promise<FramesAnswer> {
    this.calls++
    this.askedCodecs.push(codec)
    const forced = this.statusOf.get(buildId)
    if (forced) return { status: forced }
    const data = this.data.get(`${buildId}/${kind}`)
    if (!data) return { status: 'NOT_AVAILABLE' }
    if (codec !== undefined && codec !== this.codecs.get(`${buildId}/${kind}`)) return { status: 'NOT_AVAILABLE' }
    const frame = async (i: number): Promise<Uint8Array> => {
      await this.hold
      if (this.holdFrom && i >= this.holdFrom.index) await this.holdFrom.gate
      return data.subarray(ranges[i].startC, ranges[i].startC + ranges[i].sizeC)
    }
    return { status: 'OK', batch: { frame } }
  }

  async getBlob(buildId: string, name: string): Promise<BlobAnswer> {
    this.calls++
    const b = this.blobs.get(`${buildId}/${name}`)
    return b ? { status: 'OK', bytes: b } : { status: 'NOT_AVAILABLE' }
  }
}

export interface TestPeer extends SnapswarmPeer {
  provider: MemoryProvider
  dataDir: string
}

export async function startPeer(opts: Partial<SnapswarmPeerOptions> = {}): Promise<TestPeer> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'snapswarm-p2p-')))
  const provider = (opts.provider as MemoryProvider | undefined) ?? new MemoryProvider()
  let peer: SnapswarmPeer | undefined
  try {
    peer = await createSnapswarmPeer({ ...opts, dataDir, provider })
    await peer.start()
    // Bootstrap dials run in the background: wait for them so tests start from a connected cluster.
    const ids = (opts.bootstrap ?? []).map((a) => a.split('/p2p/')[1]).filter(Boolean)
    const started = peer
    await waitFor(() => ids.every((id) => started.node.isConnected(id)), 5000, 'bootstrap connections')
    return Object.assign(peer, { provider, dataDir })
  } catch (err) {
    // A peer that fails to start (a refused option, a failed bootstrap) leaves no directory behind.
    await peer?.stop().catch(() => {})
    if (opts.dataDir === undefined) await rm(dataDir, { recursive: true, force: true })
    throw err
  }
}

export async function stopPeers(...peers: TestPeer[]): Promise<void> {
  await Promise.all(peers.map((p) => p.stop().catch(() => {})))
  await Promise.all(peers.map((p) => rm(p.dataDir, { recursive: true, force: true })))
}

/** Poll `cond` every 20 ms; fail after `ms`. */
export async function waitFor(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0
}
