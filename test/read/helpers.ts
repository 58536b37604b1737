/** Test doubles and fixtures for the read path: in-memory sources with counting and fault injection. */
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getCodec } from '../../src/format/codec.ts'
import { FrameTable } from '../../src/format/frame-table.ts'
import type { BuildId, CodecName, FileKind } from '../../src/format/types.ts'
import type { FrameRef, FrameSource } from '../../src/read/source.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'

export const KiB = 1024
export const MiB = 1024 * KiB

export async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-read-'))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

export function vmData(size: number, seed = 1): Buffer {
  return new VmDataGenerator(seed).next(Math.ceil(size / 4096) * 4096).subarray(0, size)
}

export interface Framed {
  readonly plain: Buffer
  readonly stored: Buffer
  readonly table: FrameTable
}

/** Frame `plain` the way the upload does: each frame compressed alone, offsets in order. */
export async function frameData(codec: CodecName, plain: Buffer, frameSize: number): Promise<Framed> {
  const parts: Uint8Array[] = []
  const sizes: { sizeU: number; sizeC: number }[] = []
  for (let pos = 0; pos < plain.length; pos += frameSize) {
    const chunk = plain.subarray(pos, Math.min(pos + frameSize, plain.length))
    const c = codec === 'none' ? chunk : await getCodec(codec).compress(chunk)
    parts.push(c)
    sizes.push({ sizeU: chunk.length, sizeC: c.byteLength })
  }
  return { plain, stored: Buffer.concat(parts), table: FrameTable.fromSizes(codec, sizes) }
}

export function refOf(buildId: BuildId, kind: FileKind, table: FrameTable, i: number): FrameRef {
  const f = table.frames[i]
  return { buildId, kind, codec: table.codec, startU: f.startU, sizeU: f.sizeU, startC: f.startC, sizeC: f.sizeC }
}

/**
 * A FrameSource over in-memory stored objects keyed by `{buildId}/{kind}`: counts requests, and can
 * delay, corrupt, truncate, fail or hang on demand.
 */
export class MemorySource implements FrameSource {
  readonly name: string
  readonly objects = new Map<string, Uint8Array>()
  calls = 0
  delayMs = 0
  hang = false
  fail: Error | null = null
  /** Mutates the bytes returned (not the stored object). */
  tamper: ((bytes: Uint8Array, ref: FrameRef) => Uint8Array) | null = null

  constructor(name = 'storage') {
    this.name = name
  }

  /** Keyed like object names: one object per (build, file, codec). */
  put(buildId: BuildId, kind: FileKind, stored: Uint8Array, codec: CodecName = 'zstd'): void {
    this.objects.set(`${buildId}/${kind}/${codec}`, stored)
  }

  async fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null> {
    this.calls++
    if (this.hang) return new Promise(() => {}) // ignores its signal on purpose
    if (this.delayMs > 0) await sleep(this.delayMs, signal)
    if (this.fail) throw this.fail
    const obj = this.objects.get(`${ref.buildId}/${ref.kind}/${ref.codec}`)
    if (!obj) return null
    const bytes = Buffer.from(obj.subarray(ref.startC, ref.startC + ref.sizeC))
    return this.tamper ? this.tamper(bytes, ref) : bytes
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms)
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t)
        reject(signal.reason)
      },
      { once: true },
    )
  })
}

/** Polls `cond` every 5 ms until it holds; fails after `ms`, a bound far above what it should take. */
export async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  for (const deadline = Date.now() + ms; !cond(); await sleep(5)) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
  }
}

export const newId = (): BuildId => randomUUID()

/** Flip one byte in the middle: the codec checksum (or size) must catch it. */
export function flipByte(bytes: Uint8Array): Uint8Array {
  const out = Buffer.from(bytes)
  out[out.length >> 1] ^= 0x5a
  return out
}

/** Wraps any source: counts requests and can hold each one for `delayMs` (so concurrent readers pile up). */
export class CountingSource implements FrameSource {
  readonly name: string
  readonly inner: FrameSource
  calls = 0
  delayMs: number

  constructor(inner: FrameSource, delayMs = 0) {
    this.inner = inner
    this.name = inner.name
    this.delayMs = delayMs
  }

  async fetch(ref: FrameRef, signal: AbortSignal): Promise<Uint8Array | null> {
    this.calls++
    if (this.delayMs > 0) await sleep(this.delayMs, signal)
    return this.inner.fetch(ref, signal)
  }
}
