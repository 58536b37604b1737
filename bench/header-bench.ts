/**
 * Header size and decode time, V5 against V4 measured in the same run, for the header e2b made V5
 * for: a child that dirtied scattered 4 KiB pages of a large memfile (page-granular mappings). The
 * child dirties BENCH_HEADER_DIRTY (default 0.3) of the pages of a BENCH_HEADER_GIB (default 1) GiB
 * file at random; both headers are derived from the same parent and ranges, and decode to the same
 * mappings (checked).
 */
import { FrameTable } from '../src/format/frame-table.ts'
import { type BuildInfo, decodeHeader, encodeHeader, type Header } from '../src/format/header.ts'
import { layerHeader, singleLayerHeader } from '../src/format/mapping.ts'
import type { ByteRange } from '../src/format/frame-table.ts'
import { bestOf, emit } from './common.ts'

const PAGE = 4096
const FRAME_PAGES = 512

function info(buildId: string, pages: number): BuildInfo {
  const sizes = Array.from({ length: Math.ceil(pages / FRAME_PAGES) }, (_, i) => ({ sizeU: Math.min(FRAME_PAGES, pages - i * FRAME_PAGES) * PAGE, sizeC: 500_000 }))
  return { buildId, fileSize: pages * PAGE, sha256: new Uint8Array(32), frames: FrameTable.fromSizes('zstd', sizes) }
}

function child(headerVersion: 4 | 5, pages: number, dirty: ByteRange[]): Header {
  const base = '00000000-0000-4000-8000-000000000001'
  const id = '00000000-0000-4000-8000-000000000002'
  const parent = singleLayerHeader({ buildId: base, blockSize: PAGE, info: info(base, pages), headerVersion })
  return layerHeader(parent, { buildId: id, dirty, info: info(id, dirty.length), headerVersion })
}

export async function headerBench(gib = Number(process.env.BENCH_HEADER_GIB ?? 1), share = Number(process.env.BENCH_HEADER_DIRTY ?? 0.3), runs = 3): Promise<void> {
  const pages = Math.round((gib * 1024 * 1024 * 1024) / PAGE)
  let seed = 7
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed / 2 ** 31
  }
  const dirty: ByteRange[] = []
  for (let p = 0; p < pages; p++) if (rand() < share) dirty.push({ start: p * PAGE, end: (p + 1) * PAGE })
  const [v4, v5] = [child(4, pages, dirty), child(5, pages, dirty)]
  const [b4, b5] = [encodeHeader(v4), encodeHeader(v5)]
  const [d4, d5] = [decodeHeader(b4), decodeHeader(b5)]
  if (JSON.stringify(d4.mappings) !== JSON.stringify(d5.mappings)) throw new Error('V4 and V5 decode to different mappings')
  const decodeMs = (b: Uint8Array) => () => {
    const t0 = performance.now()
    decodeHeader(b)
    return performance.now() - t0
  }
  const ms4 = await bestOf(runs, decodeMs(b4))
  const ms5 = await bestOf(runs, decodeMs(b5))
  const what = `${gib} GiB memfile child, ${dirty.length} of ${pages} pages dirty, ${v4.mappings.length} mappings`
  emit(`V5 header bytes vs V4 (${what})`, b5.byteLength, 'bytes', b4.byteLength)
  emit(`V5 header decode vs V4 (${what}, best of ${runs})`, ms5, 'ms', ms4)
}
