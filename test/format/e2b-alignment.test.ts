/**
 * Every header snapswarm writes must be one e2b-dev/infra reads. e2b's rule is re-implemented here,
 * independently of src/format, from its Go code (packages/shared/pkg/storage/header):
 *  - DeserializeBytes: at least 64 bytes; version & 0xFFFF one of 1-5; block size not 0;
 *  - NewMapping(PageSize, …) in compact.go (reached through NewHeader for versions 1-4): every
 *    mapping's Offset, Length and BuildStorageOffset a multiple of 4096, else "compact mapping: …
 *    not block-aligned to 4096";
 *  - readV5MappingSection: no mapping ends beyond the size rounded up to 4 KiB;
 *  - getMapping in header.go (every read): each page of [0, size) falls in a mapping, so mappings
 *    start at 0 and follow each other without a gap up to at least the size.
 * The headers come from every way snapswarm derives one (first layers of every codec and both
 * written versions, children dirtying single pages, the partial last page, zero ranges) for sizes
 * that are not multiples of 4 KiB, and from real `push` runs whose bytes are read back.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { decompressFrameSync } from 'lz4-napi'
import { InvalidArgumentError } from '../../src/errors.ts'
import { FrameTable } from '../../src/format/frame-table.ts'
import { type BuildInfo, encodeHeader, type Header } from '../../src/format/header.ts'
import { layerHeader, singleLayerHeader } from '../../src/format/mapping.ts'
import { RawDigests } from '../../src/format/raw-digests.ts'
import type { CodecName } from '../../src/format/types.ts'
import { randomBuildId } from '../../src/format/uuid.ts'
import { runCli } from '../../bench/lib/cli.ts'
import { rng, vmLike } from './helpers.ts'

const PAGE = 4096
const MiB = 1024 * 1024

interface E2bMapping {
  offset: bigint
  length: bigint
  storage: bigint
}

/** e2b's reader, as far as alignment and coverage go; returns why it would refuse, or undefined. */
function e2bRefuses(bytes: Uint8Array): string | undefined {
  if (bytes.byteLength < 64) return `header too short: ${bytes.byteLength} bytes`
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const version = Number(view.getBigUint64(0, true) & 0xffffn)
  const blockSize = view.getBigUint64(8, true)
  const size = view.getBigUint64(16, true)
  if (version < 1 || version > 5) return `unsupported header version ${version}`
  if (blockSize === 0n) return 'block size cannot be zero'
  let mappings: E2bMapping[]
  if (version <= 3) mappings = records(new DataView(bytes.buffer, bytes.byteOffset + 64, bytes.byteLength - 64), 0, (bytes.byteLength - 64) / 40)
  else {
    const body = new Uint8Array(decompressFrameSync(Buffer.from(bytes.subarray(69))))
    const b = new DataView(body.buffer, body.byteOffset, body.byteLength)
    let at = 4
    for (let n = b.getUint32(0, true); n > 0; n--) at += 16 + 8 + 32 + 4 + 4 + 24 * b.getUint32(at + 16 + 8 + 32 + 4, true)
    mappings = version === 4 ? records(b, at + 4, b.getUint32(at, true)) : columns(b, at, Math.ceil(Number(size) / PAGE))
  }
  for (const [i, m] of mappings.entries()) {
    for (const [field, v] of [['offset', m.offset], ['length', m.length], ['build storage offset', m.storage]] as const) {
      if (v % BigInt(PAGE) !== 0n) return `compact mapping: ${field} ${v} at index ${i} not block-aligned to ${PAGE}`
    }
  }
  const limit = ((size + BigInt(PAGE) - 1n) / BigInt(PAGE)) * BigInt(PAGE)
  let end = 0n
  for (const m of mappings) {
    if (m.offset !== end) return `no source found for offset ${end}`
    end = m.offset + m.length
    if (end > limit) return `mapping end ${end} exceeds size ${size} rounded up to ${limit}`
  }
  if (end < size) return `no source found for offset ${end}`
  return undefined
}

function records(v: DataView, at: number, n: number): E2bMapping[] {
  const out: E2bMapping[] = []
  for (let i = 0; i < n; i++, at += 40) out.push({ offset: v.getBigUint64(at, true), length: v.getBigUint64(at + 8, true), storage: v.getBigUint64(at + 32, true) })
  return out
}

/** The V5 columns in pages, with the gaps (and the tail up to the last page) e2b's reader fills with nil mappings. */
function columns(v: DataView, at0: number, sizePages: number): E2bMapping[] {
  let at = at0
  const m = v.getUint32(at, true)
  at += 4 + 16 * m
  const n = v.getUint32(at, true)
  at += 4
  const uvarint = (): number => {
    let x = 0
    for (let s = 1; ; s *= 128) {
      const b = v.getUint8(at++)
      x += (b & 0x7f) * s
      if (b < 0x80) return x
    }
  }
  const col = () => Array.from({ length: n }, uvarint)
  const offsets = col()
  const lengths = col()
  const out: E2bMapping[] = []
  let off = 0
  let end = 0
  for (let i = 0; i < n; i++) {
    off += offsets[i]
    if (off > end) out.push({ offset: BigInt(end * PAGE), length: BigInt((off - end) * PAGE), storage: 0n })
    out.push({ offset: BigInt(off * PAGE), length: BigInt(lengths[i] * PAGE), storage: 0n })
    end = off + lengths[i]
  }
  if (end < sizePages) out.push({ offset: BigInt(end * PAGE), length: BigInt((sizePages - end) * PAGE), storage: 0n })
  return out
}

function info(buildId: string, fileSize: number, codec: CodecName | 'digests'): BuildInfo {
  const sha256 = new Uint8Array(32).fill(3)
  if (codec === 'digests') {
    const chunks = Math.ceil(fileSize / (2 * PAGE))
    return { buildId, fileSize, sha256, frames: new FrameTable('none', []), digests: RawDigests.fromDigests(2 * PAGE, new Uint8Array(chunks * 32).fill(9)) }
  }
  if (codec === 'none') return { buildId, fileSize, sha256, frames: new FrameTable('none', []) }
  const frame = 3 * PAGE + 5 // frames need not be aligned: only mappings are
  const sizes = Array.from({ length: Math.ceil(fileSize / frame) }, (_, i) => ({ sizeU: Math.min(frame, fileSize - i * frame), sizeC: 77 }))
  return { buildId, fileSize, sha256, frames: FrameTable.fromSizes(codec, sizes) }
}

const SIZES = [1, 100, PAGE - 1, PAGE + 1, 2 * PAGE + 100, 2 * MiB + PAGE + 1, 24 * MiB + 100]
const CODECS: (CodecName | 'digests')[] = ['none', 'digests', 'zstd', 'lz4']

/** A child of `parent` dirtying `dirty` blocks (the last one may be the partial last block) and zeroing `empty`. */
function child(parent: Header, dirtyBlocks: number[], emptyBlocks: number[], codec: CodecName | 'digests', headerVersion: 4 | 5): Header {
  const bs = parent.blockSize
  const range = (b: number) => ({ start: b * bs, end: Math.min((b + 1) * bs, parent.size) })
  const dirty = dirtyBlocks.map(range)
  const id = randomBuildId()
  const bytes = dirty.reduce((n, r) => n + r.end - r.start, 0)
  return layerHeader(parent, { buildId: id, dirty, empty: emptyBlocks.map(range), info: info(id, bytes, codec), headerVersion })
}

function assertE2bReads(h: Header, what: string): void {
  const why = e2bRefuses(encodeHeader(h))
  assert.equal(why, undefined, `${what}: e2b would refuse: ${why}`)
}

describe("every header snapswarm writes passes e2b's alignment rule", () => {
  it('regression: the last mapping ended at an unaligned size (e2b: not block-aligned to 4096): first layers and children over sizes that are not multiples of 4 KiB, all codecs, versions 4 and 5, block sizes 4 KiB and 2 MiB', () => {
    const r = rng(18)
    let checked = 0
    for (const size of SIZES) {
      for (const blockSize of [PAGE, 2 * MiB]) {
        for (const headerVersion of [4, 5] as const) {
          for (const codec of CODECS) {
            const id = randomBuildId()
            const base = singleLayerHeader({ buildId: id, blockSize, info: info(id, size, codec), headerVersion })
            assertE2bReads(base, `first layer ${size} B ${codec} V${headerVersion}`)
            const blocks = Math.ceil(size / blockSize)
            const last = blocks - 1
            // The partial last block, one small block, and a zeroed block; then a grandchild over it.
            const kid = child(base, blocks > 2 ? [1, last] : [last], blocks > 3 ? [2] : [], CODECS[Math.floor(r() * 4)], headerVersion)
            assertE2bReads(kid, `child of ${size} B`)
            const grand = child(kid, blocks > 1 ? [0] : [], [last], CODECS[Math.floor(r() * 4)], headerVersion)
            assertE2bReads(grand, `grandchild of ${size} B`)
            checked += 3
          }
        }
      }
    }
    assert.equal(checked, SIZES.length * 2 * 2 * CODECS.length * 3)
  })

  it("the rule itself refuses what e2b refuses: an unaligned last mapping, a gap, a mapping past the last page", () => {
    const id = randomBuildId()
    const ok = singleLayerHeader({ buildId: id, blockSize: PAGE, info: info(id, PAGE + 1, 'zstd') })
    assert.equal(e2bRefuses(encodeHeader(ok)), undefined)
    const unaligned = { ...ok, mappings: [{ ...ok.mappings[0], length: PAGE + 1 }] }
    assert.match(e2bRefuses(encodeHeader(unaligned)) ?? '', /compact mapping: length 4097 at index 0 not block-aligned to 4096/)
    const gap = { ...ok, mappings: [{ ...ok.mappings[0], offset: PAGE, length: PAGE }] }
    assert.match(e2bRefuses(encodeHeader(gap)) ?? '', /no source found for offset 0/)
    // Our encoder refuses this one itself, so it is patched into V3 bytes.
    const past = encodeHeader({ ...ok, version: 3, builds: new Map() })
    new DataView(past.buffer, past.byteOffset).setBigUint64(64 + 8, BigInt(3 * PAGE), true)
    assert.match(e2bRefuses(past) ?? '', /mapping end 12288 exceeds size 4097 rounded up to 8192/)
  })

  it('regression: block sizes below 4 KiB were accepted: block sizes that are not a multiple of 4 KiB are refused (e2b maps whole 4 KiB pages)', () => {
    for (const blockSize of [512, 1024, 2048, 6144]) {
      const id = randomBuildId()
      assert.throws(
        () => singleLayerHeader({ buildId: id, blockSize, info: info(id, 8 * PAGE, 'zstd') }),
        (err: unknown) => err instanceof InvalidArgumentError && new RegExp(`blockSize: expected a multiple of 4096, found ${blockSize}`).test(err.message),
      )
    }
  })

  it('push writes headers e2b reads for a 3 MiB + 100 B memfile and a child that rewrites its partial last page; every byte reads back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'snapswarm-e2b-align-'))
    try {
      const storage = pathToFileURL(join(dir, 'bucket')).href
      const size = 3 * MiB + 100
      const model = vmLike(size, 5)
      await writeFile(join(dir, 'base'), model)
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()]
      let r = await runCli(['push', '--storage', storage, '--build-id', a, '--memfile', join(dir, 'base'), '--codec', 'zstd', '--block-size', '4096'])
      assert.equal(r.code, 0, r.stderr)
      const tailStart = size - (size % PAGE)
      const diff = vmLike(PAGE + (size - tailStart), 6)
      diff.copy(model, PAGE, 0, PAGE)
      diff.copy(model, tailStart, PAGE)
      await writeFile(join(dir, 'diff'), diff)
      r = await runCli(['push', '--storage', storage, '--build-id', b, '--parent', a, '--memfile', join(dir, 'diff'), '--dirty', `${PAGE}-${2 * PAGE},${tailStart}-${size}`, '--codec', 'lz4'])
      assert.equal(r.code, 0, r.stderr)
      const raw = vmLike(PAGE, 7)
      raw.copy(model, 5 * PAGE)
      await writeFile(join(dir, 'raw'), raw)
      r = await runCli(['push', '--storage', storage, '--build-id', c, '--parent', b, '--memfile', join(dir, 'raw'), '--dirty', `${5 * PAGE}-${6 * PAGE}`, '--codec', 'none'])
      assert.equal(r.code, 0, r.stderr)
      for (const id of [a, b, c]) {
        const why = e2bRefuses(await readFile(join(dir, 'bucket', id, 'memfile.header')))
        assert.equal(why, undefined, `${id}: e2b would refuse: ${why}`)
      }
      const read = await runCli(['read', '--storage', storage, c, 'memfile'])
      assert.equal(read.code, 0, read.stderr)
      assert.equal(read.stdout.byteLength, size)
      assert.ok(read.stdout.equals(model), 'every byte of the 3-layer chain equals the model')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
