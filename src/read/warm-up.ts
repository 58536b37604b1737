/**
 * One read through the whole read core at node start, on a build made up for it: the header codec
 * (encode, decode, validate) of a pending V4 header, the build reader's layer plan, the chunk cache,
 * the fetcher, frame verification, the zstd decoder of the usual frame size, the chunk file's fill,
 * write and page checksums. The first read of a resumed VM otherwise pays for all of that code
 * running for the first time in the process (measured: a first cold read on a fresh node took twice as
 * long as the same read on a node that had read before), and for creating the decoder its frame size
 * uses. It costs a few milliseconds of start time; its scratch files are removed before it returns.
 * Never throws: a node whose warm-up failed reads as before, only its first read is slower.
 */
import { createHash, randomUUID } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { getCodec } from '../format/codec.ts'
import { FrameTable } from '../format/frame-table.ts'
import { decodeHeader, encodeHeader } from '../format/header.ts'
import { singleLayerHeader } from '../format/mapping.ts'
import type { Logger } from '../obs/log.ts'
import { BuildReader } from './build-reader.ts'
import { ChunkCache } from './chunk-cache.ts'
import { PAGE_SIZE } from './constants.ts'
import { FrameFetcher } from './fetcher.ts'
import type { FrameSource } from './source.ts'

/** The frame size of memfiles (e2b's 2 MiB blocks): the decoder kept for this size is the one first reads use. */
const WARM_FRAME_BYTES = 2 * 1024 * 1024

/** Runs the warm-up in `dir` (created, then removed). Resolves when done, true if it read back what it wrote. */
export async function warmReadPath(dir: string, log: Logger, frameBytes = WARM_FRAME_BYTES): Promise<boolean> {
  try {
    await mkdir(dir, { recursive: true })
    const plain = Buffer.alloc(frameBytes)
    for (let i = 0; i < frameBytes; i += PAGE_SIZE) plain.writeUInt32LE(i, i) // not all zeros: real blocks to decode
    const stored = await getCodec('zstd').compress(plain, 1)
    const buildId = randomUUID()
    const frames = FrameTable.fromSizes('zstd', [{ sizeU: frameBytes, sizeC: stored.byteLength }])
    const info = { buildId, fileSize: frameBytes, sha256: createHash('sha256').update(plain).digest(), frames }
    // Through the wire form, as a header a peer serves would come.
    const header = decodeHeader(encodeHeader(singleLayerHeader({ buildId, blockSize: frameBytes, info, incomplete: true })))
    const source: FrameSource = { name: 'warm-up', fetch: async () => stored }
    const fetcher = new FrameFetcher({ sources: [source], logger: log })
    const cache = await ChunkCache.open({ dir, maxBytes: 4 * frameBytes, fetcher, logger: log })
    const page = Buffer.alloc(PAGE_SIZE)
    try {
      const reader = await BuildReader.open({ header, kind: 'memfile', cache })
      try {
        await reader.readInto(page, PAGE_SIZE)
      } finally {
        await reader.close()
      }
    } finally {
      await cache.close()
    }
    return page.equals(plain.subarray(PAGE_SIZE, 2 * PAGE_SIZE))
  } catch (err) {
    log.debug({ err }, 'read path warm-up failed; the first read runs cold')
    return false
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => {})
  }
}
