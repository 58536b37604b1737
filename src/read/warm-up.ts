/**
 * One read through the whole read core at node start, on a frame made up for it: fetcher, frame
 * verification, the zstd decoder of the usual frame size, the chunk file's fill, write and page
 * checksums. The first read of a resumed VM otherwise pays for all of that code running for the first
 * time in the process (measured: a first cold read on a fresh node took twice as long as the same read
 * on a node that had read before), and for creating the decoder its frame size uses. It costs a few
 * milliseconds of start time; its scratch files are removed before it returns. Never throws: a node
 * whose warm-up failed reads as before, only its first read is slower.
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { getCodec } from '../format/codec.ts'
import { NIL_BUILD_ID } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import { ChunkFile } from './chunk-file.ts'
import { PAGE_SIZE } from './constants.ts'
import { FrameFetcher } from './fetcher.ts'
import type { FrameRef, FrameSource } from './source.ts'

/** The frame size of memfiles (e2b's 2 MiB blocks): the decoder kept for this size is the one first reads use. */
const WARM_FRAME_BYTES = 2 * 1024 * 1024

/** Runs the warm-up in `dir` (created, then removed). Resolves when done, true if it read back what it wrote. */
export async function warmReadPath(dir: string, log: Logger, frameBytes = WARM_FRAME_BYTES): Promise<boolean> {
  try {
    await mkdir(dir, { recursive: true })
    const plain = Buffer.alloc(frameBytes)
    for (let i = 0; i < frameBytes; i += PAGE_SIZE) plain.writeUInt32LE(i, i) // not all zeros: real blocks to decode
    const stored = await getCodec('zstd').compress(plain, 1)
    const ref: FrameRef = { buildId: NIL_BUILD_ID, kind: 'memfile', codec: 'zstd', startU: 0, sizeU: frameBytes, startC: 0, sizeC: stored.byteLength }
    const source: FrameSource = { name: 'warm-up', fetch: async () => stored }
    const fetcher = new FrameFetcher({ sources: [source], logger: log })
    const file = await ChunkFile.open(join(dir, 'frame.data'), join(dir, 'frame.map'), { fetcher, logger: log })
    const page = Buffer.alloc(PAGE_SIZE)
    try {
      await file.readInto(page, PAGE_SIZE, () => ref)
    } finally {
      await file.close()
    }
    return page.equals(plain.subarray(PAGE_SIZE, 2 * PAGE_SIZE))
  } catch (err) {
    log.debug({ err }, 'read path warm-up failed; the first read runs cold')
    return false
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => {})
  }
}
