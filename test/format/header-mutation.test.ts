/**
 * Hostile input: 10,000 random corruptions and truncations of valid V3 and V4 headers, and 10,000 of
 * V5 headers, must each end
 * as a named error (SnapswarmError) or a valid header, never another exception, a hang, or an
 * allocation beyond the limits. Half of the V4 cases corrupt the *decompressed* body and
 * re-wrap it in a valid LZ4 frame, so the body parser sees them instead of the LZ4 checksum. Some V4
 * headers carry raw builds' chunk digest trailers, which are mutated with the rest.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { compressFrameSync, decompressFrameSync } from 'lz4-napi'
import { SnapswarmError } from '../../src/errors.ts'
import { FrameTable } from '../../src/format/frame-table.ts'
import { decodeHeader, encodeHeader, type Header } from '../../src/format/header.ts'
import { layerHeader, singleLayerHeader } from '../../src/format/mapping.ts'
import { RawDigests } from '../../src/format/raw-digests.ts'
import type { CodecName } from '../../src/format/types.ts'
import { randomBuildId } from '../../src/format/uuid.ts'
import { randInt, rng } from './helpers.ts'

const K = 4096
const EXTREMES = [0, 1, 0x7f, 0x80, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x0010_0001]

/** `digests`: raw layers carry chunk digests (the digest trailer), as raw builds are written now. */
function chainHeaders(codecs: CodecName[], seed: number, digests = false, headerVersion: 4 | 5 = 4): Header[] {
  const r = rng(seed)
  const blocks = 48
  const info = (id: string, n: number, codec: CodecName) => ({
    buildId: id,
    fileSize: n * K,
    sha256: new Uint8Array(32).fill(seed),
    frames: codec === 'none' ? new FrameTable('none', []) : FrameTable.fromSizes(codec, Array.from({ length: n }, () => ({ sizeU: K, sizeC: 999 }))),
    ...(digests && codec === 'none' && n > 0 ? { digests: RawDigests.fromDigests(2 * K, new Uint8Array(Math.ceil(n / 2) * 32).fill(seed)) } : {}),
  })
  const base = randomBuildId()
  const out = [singleLayerHeader({ buildId: base, blockSize: K, info: info(base, blocks, codecs[0]), headerVersion })]
  for (const codec of codecs.slice(1)) {
    const id = randomBuildId()
    const dirty: { start: number; end: number }[] = []
    for (let b = 0; b < blocks; b++) if (r() < 0.3) dirty.push({ start: b * K, end: (b + 1) * K })
    const empty = r() < 0.5 ? [] : [{ start: (blocks - 1) * K, end: blocks * K }].filter((e) => !dirty.some((d) => d.start === e.start))
    out.push(layerHeader(out[out.length - 1], { buildId: id, dirty, empty, info: info(id, dirty.length, codec), incomplete: r() < 0.3, headerVersion }))
  }
  return out
}

function mutateBytes(src: Uint8Array, r: () => number): Uint8Array {
  const kind = randInt(r, 0, 5)
  if (kind === 0) return src.subarray(0, randInt(r, 0, src.length - 1)) // truncate
  if (kind === 1) return Buffer.concat([src, Buffer.from(Array.from({ length: randInt(r, 1, 50) }, () => randInt(r, 0, 255)))])
  const out = Uint8Array.from(src)
  const view = new DataView(out.buffer)
  const at = randInt(r, 0, out.length - 1)
  if (kind === 2) for (let i = randInt(r, 1, 3); i > 0; i--) out[randInt(r, 0, out.length - 1)] ^= 1 << randInt(r, 0, 7)
  else if (kind === 3) out[at] = randInt(r, 0, 255)
  else if (kind === 4 && at + 4 <= out.length) view.setUint32(at, EXTREMES[randInt(r, 0, EXTREMES.length - 1)], true)
  else if (at + 8 <= out.length) view.setBigUint64(at, r() < 0.5 ? 0xffff_ffff_ffff_ffffn : BigInt(2 ** 53) + BigInt(randInt(r, 0, 9)), true)
  return out
}

/** Corrupt the plain V4 body, then re-wrap it (valid LZ4 frame; declared length right or not). */
function mutateBody(src: Uint8Array, r: () => number): Uint8Array {
  const body = new Uint8Array(decompressFrameSync(Buffer.from(src.subarray(69))))
  const bad = mutateBytes(body, r)
  const prefix = Uint8Array.from(src.subarray(0, 69))
  new DataView(prefix.buffer).setUint32(65, r() < 0.9 ? bad.byteLength : randInt(r, 0, 2 * bad.byteLength), true)
  return Buffer.concat([prefix, compressFrameSync(Buffer.from(bad), { contentChecksum: true, blockChecksums: true })])
}

/**
 * `count` mutations of the headers `pick` gives, a third of them inside the re-wrapped body; each
 * must end in a named error or a header that can be stored again. Returns the outcome counts.
 */
function mutateMany(count: number, seed: number, pick: (i: number) => Uint8Array): Map<string, number> {
  const r = rng(seed)
  const outcomes = new Map<string, number>()
  for (let i = 0; i < count; i++) {
    const v = pick(i)
    const input = i % 3 === 2 ? mutateBody(v, r) : mutateBytes(v, r)
    let outcome: string
    try {
      const h = decodeHeader(input)
      encodeHeader(h) // what we decode, we can store: same validation both ways
      outcome = 'valid'
    } catch (err) {
      if (!(err instanceof SnapswarmError)) {
        assert.fail(`mutation ${i}: expected a SnapswarmError, found ${err instanceof Error ? err.stack : err}`)
      }
      outcome = err.code
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
  }
  return outcomes
}

describe('header mutation test', () => {
  it('10,000 corruptions end in a named error or a valid header', () => {
    const v3 = chainHeaders(['none', 'none', 'none', 'none'], 1).map(encodeHeader)
    const v4 = [...chainHeaders(['zstd', 'lz4', 'none', 'zstd'], 2), ...chainHeaders(['none', 'lz4', 'zstd'], 3), ...chainHeaders(['none', 'zstd', 'none'], 4, true)]
      .filter((h) => h.version === 4)
      .map(encodeHeader)
    assert.ok(v3.length === 4 && v4.length >= 8)
    assert.ok(v4.some((b) => Buffer.from(decompressFrameSync(Buffer.from(b.subarray(69)))).includes('SSRD')), 'raw digest trailers are mutated too')
    const outcomes = mutateMany(10_000, 42, (i) => (i % 3 === 0 ? v3[i % v3.length] : v4[i % v4.length]))
    assert.ok((outcomes.get('ERR_FORMAT') ?? 0) > 5000, JSON.stringify([...outcomes]))
    assert.ok((outcomes.get('valid') ?? 0) > 0, 'some mutations are harmless (e.g. generation)')
  })

  it('V5: 10,000 corruptions of columnar headers (varint columns, build id table) end in a named error or a valid header', () => {
    const v5 = [...chainHeaders(['zstd', 'lz4', 'none', 'zstd'], 5, false, 5), ...chainHeaders(['none', 'lz4', 'zstd'], 6, true, 5), ...chainHeaders(['lz4', 'none', 'none'], 7, false, 5)].map(encodeHeader)
    assert.ok(v5.every((b) => b[0] === 5) && v5.length === 10)
    const outcomes = mutateMany(10_000, 43, (i) => v5[i % v5.length])
    assert.ok((outcomes.get('ERR_FORMAT') ?? 0) > 5000, JSON.stringify([...outcomes]))
    assert.ok((outcomes.get('valid') ?? 0) > 0, 'some mutations are harmless (e.g. generation)')
  })
})
