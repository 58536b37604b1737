/** A 3-layer chain pushed through the real CLI, and random reads of it checked against a byte model. */
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { runCli } from '../../bench/lib/cli.ts'

const MiB = 1024 * 1024
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

export interface ChainModel {
  ids: string[]
  virtual: Buffer
}

/** Push base (compressed), child (raw diff, mixing codecs), grandchild (lz4 diff); returns the model. */
export async function pushChain(storage: string, dir: string, env: NodeJS.ProcessEnv = {}): Promise<ChainModel> {
  const gen = new VmDataGenerator(11)
  const size = 12 * MiB
  const virtual = gen.next(size)
  const base = join(dir, 'base.raw')
  await writeFile(base, virtual)
  const ids: string[] = [randomUUID(), randomUUID(), randomUUID()]
  const snap = join(dir, 'snapfile')
  await writeFile(snap, 'snapfile-bytes')
  let r = await runCli(['push', '--storage', storage, '--build-id', ids[0], '--memfile', base, '--snapfile', snap, '--codec', 'zstd', '--block-size', '4096'], { env })
  assert.equal(r.code, 0, r.stderr)

  const layers: [string, string, [number, number][]][] = [
    [ids[1], 'none', [[0, 2 * MiB], [6 * MiB, 6 * MiB + 8192]]],
    [ids[2], 'lz4', [[4096, 3 * MiB], [6 * MiB + 4096, 9 * MiB], [12 * MiB - 4096, 12 * MiB]]],
  ]
  let parent: string = ids[0]
  for (const [id, codec, ranges] of layers) {
    const diff = Buffer.concat(ranges.map(([s, e]) => gen.next(Math.ceil((e - s) / 4096) * 4096).subarray(0, e - s)))
    let off = 0
    for (const [s, e] of ranges) {
      diff.copy(virtual, s, off, off + (e - s))
      off += e - s
    }
    const diffPath = join(dir, `${id}.diff`)
    await writeFile(diffPath, diff)
    const dirty = ranges.map(([s, e]) => `${s}-${e}`).join(',')
    r = await runCli(['push', '--storage', storage, '--build-id', id, '--parent', parent, '--memfile', diffPath, '--dirty', dirty, '--codec', codec, '--use-case', 'pause'], { env })
    assert.equal(r.code, 0, r.stderr)
    parent = id
  }
  return { ids, virtual }
}

/** The 4 KiB pages of `b` that are not all zero, in order: what a data file stores once holes are left out. */
export function nonZeroPages(b: Buffer): Buffer {
  const pages: Buffer[] = []
  for (let p = 0; p < b.byteLength; p += 4096) {
    const page = b.subarray(p, p + 4096)
    if (page.some((x) => x !== 0)) pages.push(page)
  }
  return Buffer.concat(pages)
}

export async function checkRandomReads(storage: string, model: ChainModel, count: number, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const top = model.ids[2]
  const whole = await runCli(['read', '--storage', storage, top, 'memfile'], { env })
  assert.equal(whole.code, 0, whole.stderr)
  assert.equal(sha(whole.stdout), sha(model.virtual))
  let seed = 99
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
  for (let i = 0; i < count; i++) {
    const offset = rand(model.virtual.byteLength)
    const length = 1 + rand(Math.min(3 * MiB, model.virtual.byteLength - offset))
    const r = await runCli(['read', '--storage', storage, top, 'memfile', '--offset', String(offset), '--length', String(length)], { env })
    assert.equal(r.code, 0, r.stderr)
    assert.ok(r.stdout.equals(model.virtual.subarray(offset, offset + length)), `range ${offset}+${length}`)
  }
}

