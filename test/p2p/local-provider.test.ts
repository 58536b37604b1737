/** The daemon's provider serves a frame only for the codec of its local copy (src/origin/provider.ts). */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { FrameTable } from '../../src/format/frame-table.ts'
import type { CodecName } from '../../src/format/types.ts'
import type { LocalBuild, LocalBuilds } from '../../src/origin/local-builds.ts'
import { LocalBuildProvider } from '../../src/origin/provider.ts'
import { equalBytes } from './helpers.ts'

const KiB = 1024
const never = new AbortController().signal

describe('LocalBuildProvider.getFrames and the requested codec', () => {
  let dir: string
  const data = new Uint8Array(randomBytes(64 * KiB))
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'snapswarm-provider-'))
    await writeFile(join(dir, 'data'), data)
  })
  after(() => rm(dir, { recursive: true, force: true }))

  /** A provider over one pending build whose memfile copy has `codec` (frames of 16 KiB when compressed). */
  function providerFor(codec: CodecName): { provider: LocalBuildProvider; buildId: string } {
    const buildId = randomUUID()
    const sizes = codec === 'none' ? [] : Array.from({ length: 4 }, () => ({ sizeU: 32 * KiB, sizeC: 16 * KiB }))
    const info = { buildId, fileSize: codec === 'none' ? data.byteLength : 128 * KiB, sha256: new Uint8Array(32), frames: FrameTable.fromSizes(codec, sizes) }
    const build = { id: buildId, state: 'pending', files: new Map([['memfile', { dataPath: join(dir, 'data'), info }]]) } as unknown as LocalBuild
    const builds = { get: (id: string) => (id === buildId ? build : undefined) } as unknown as LocalBuilds
    return { provider: new LocalBuildProvider(builds), buildId }
  }

  async function read(provider: LocalBuildProvider, buildId: string, codec: CodecName | undefined, startC: number, sizeC: number) {
    const ans = await provider.getFrames(buildId, 'memfile', codec, [{ startC, sizeC }])
    if (ans.status !== 'OK') return ans.status
    try {
      return await ans.batch.frame(0, never)
    } finally {
      ans.batch.release?.()
    }
  }

  it('a raw copy refuses a zstd or lz4 range that fits its bounds (the stress-test false penalty)', async () => {
    const { provider, buildId } = providerFor('none')
    assert.equal(await read(provider, buildId, 'zstd', 0, 16 * KiB), 'NOT_AVAILABLE')
    assert.equal(await read(provider, buildId, 'lz4', 16 * KiB, 16 * KiB), 'NOT_AVAILABLE')
    const raw = await read(provider, buildId, 'none', 16 * KiB, 16 * KiB)
    assert.ok(raw instanceof Uint8Array && equalBytes(raw, data.subarray(16 * KiB, 32 * KiB)))
  })

  it('a compressed copy refuses another codec even for a range that is exactly one of its frames', async () => {
    const { provider, buildId } = providerFor('zstd')
    assert.equal(await read(provider, buildId, 'lz4', 16 * KiB, 16 * KiB), 'NOT_AVAILABLE')
    assert.equal(await read(provider, buildId, 'none', 16 * KiB, 16 * KiB), 'NOT_AVAILABLE')
    assert.ok((await read(provider, buildId, 'zstd', 16 * KiB, 16 * KiB)) instanceof Uint8Array)
    assert.equal(await read(provider, buildId, 'zstd', 8 * KiB, 16 * KiB), 'NOT_AVAILABLE', 'not a frame boundary')
  })

  it('an older client that sends no codec is matched on the ranges alone, as before', async () => {
    const { provider, buildId } = providerFor('none')
    assert.ok((await read(provider, buildId, undefined, 0, 16 * KiB)) instanceof Uint8Array)
  })
})

it('regression: a restarting origin answered NOT_AVAILABLE (a definite "no") for its own pending builds before it had recovered its pause records; now BUSY until then', async () => {
  const builds = { get: () => undefined } as unknown as LocalBuilds
  const provider = new LocalBuildProvider(builds)
  const id = randomUUID()
  assert.deepEqual(await provider.getHeader(id, 'memfile'), { status: 'BUSY' }, 'not yet recovered: ask again')
  provider.recovered()
  assert.deepEqual(await provider.getHeader(id, 'memfile'), { status: 'NOT_AVAILABLE' }, 'recovered: not this node’s build')
})
