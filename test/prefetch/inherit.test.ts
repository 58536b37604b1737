/**
 * A child build without a trace of its own prefetches from its parent's trace the frames it did not
 * change, and records its own (real files: a file:// bucket, the chunk cache, the codec).
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { decodeTrace } from '../../src/prefetch/trace.ts'
import { withTmp } from '../read/helpers.ts'
import { count, FRAME, setup, until } from './helpers.ts'

test("a child build prefetches the parent's traced frames it did not change, nothing of its own, and reads exact bytes", async () => {
  await withTmp(async (dir) => {
    // The parent's trace: frames 0-3; the child replaced frame 1.
    const s = await setup(dir, { traced: [0, 1, 2, 3], concurrency: 2, child: [1] })
    try {
      await until('three frames prefetched', async () => (await count(s.metrics.prefetchFrames)) === 3)
      const parentId = s.source.refs[0].buildId
      assert.notEqual(parentId, s.file.header.buildId)
      assert.deepEqual(
        s.source.refs.map((r) => [r.buildId === parentId ? 'parent' : 'child', r.startU / FRAME]),
        [
          ['parent', 0],
          ['parent', 2],
          ['parent', 3],
        ],
      )
      for (const f of [0, 1, 2, 3]) {
        const got = await s.file.read(f * FRAME + 4096, 8192)
        assert.ok(Buffer.from(got).equals(s.plain.subarray(f * FRAME + 4096, f * FRAME + 12288)), `frame ${f}`)
      }
      assert.equal(await count(s.metrics.demandFetches), 1, "only the child's own frame is a demand miss")
      assert.equal(await count(s.metrics.prefetchHits), 3)
    } finally {
      await s.close()
    }
    // The child recorded its own trace meanwhile: every frame it read, in order.
    const own = decodeTrace(await readFile(join(s.bucket, s.file.header.buildId, 'memfile.prefetch')))
    assert.deepEqual(
      own.entries.map((e) => e.offset),
      [0, 1, 2, 3].map((f) => f * FRAME + 4096),
    )
  })
})
