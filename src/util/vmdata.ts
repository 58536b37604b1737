/**
 * Deterministic "VM-like" test data: what a paused guest's memory looks like to a compressor.
 * Pages are a seeded mix of zero pages, structured pages (small records with pointers and counters),
 * text pages, and incompressible pages (page cache of compressed files, keys). The mix is tuned so
 * zstd-3 lands near the 3-4× that e2b reports for real memfiles.
 */
import { createCipheriv, createHash } from 'node:crypto'
import { open } from 'node:fs/promises'

const PAGE = 4096
const WORDS = (
  'the of and to in is for on that by this with from at as are be or an kernel page memory buffer ' +
  'socket process thread file inode dentry cache device driver network packet queue lock mutex ' +
  'sandbox snapshot frame header build layer python node java import return function value error'
).split(' ')

/** Stream of VM-like bytes; `next(n)` returns the next n bytes (n a multiple of 4096). */
export class VmDataGenerator {
  private readonly noise
  private state: number
  private readonly zeroPercent: number

  /** `zeroPercent`: the share of zero pages (38 by default); the other kinds keep their proportions. */
  constructor(seed = 1, zeroPercent = 38) {
    this.zeroPercent = zeroPercent
    const key = createHash('sha256').update(`vmdata:${seed}`).digest()
    this.noise = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32))
    this.state = (seed * 2654435761) >>> 0 || 1
  }

  next(n: number): Buffer {
    const out = Buffer.alloc(n)
    for (let p = 0; p + PAGE <= n; p += PAGE) this.fillPage(out.subarray(p, p + PAGE))
    return out
  }

  private rand(): number {
    // xorshift32: cheap, deterministic, good enough to pick page kinds and words.
    let x = this.state
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.state = x >>> 0
    return this.state
  }

  private fillPage(page: Buffer): void {
    const roll = this.rand() % 100
    if (roll < this.zeroPercent) return // zero page
    const kind = 38 + Math.floor(((roll - this.zeroPercent) * 62) / (100 - this.zeroPercent))
    if (kind < 62) this.structPage(page)
    else if (kind < 82) this.textPage(page)
    else this.noise.update(page).copy(page) // incompressible
  }

  private structPage(page: Buffer): void {
    const base = BigInt(0xffff888000000000n) + BigInt(this.rand()) * 4096n
    const stride = 16 + (this.rand() % 4) * 16
    for (let off = 0, i = 0; off + stride <= PAGE; off += stride, i++) {
      page.writeBigUInt64LE(base + BigInt(i * stride), off)
      page.writeUInt32LE(i, off + 8)
      if (this.rand() % 8 === 0) page.writeUInt32LE(this.rand(), off + 12)
    }
  }

  private textPage(page: Buffer): void {
    let off = 0
    while (off < PAGE) {
      const w = WORDS[this.rand() % WORDS.length]
      off += page.write(`${w} `, off, 'latin1')
    }
  }
}

/** Write `size` bytes of VM-like data to `path`; returns nothing, the file is the product. */
export async function writeVmData(path: string, size: number, seed = 1, zeroPercent?: number): Promise<void> {
  const gen = new VmDataGenerator(seed, zeroPercent)
  const fh = await open(path, 'w')
  try {
    const chunk = 4 * 1024 * 1024
    for (let pos = 0; pos < size; pos += chunk) {
      const n = Math.min(chunk, size - pos)
      const buf = gen.next(Math.ceil(n / PAGE) * PAGE).subarray(0, n)
      await fh.write(buf, 0, n, pos)
    }
  } finally {
    await fh.close()
  }
}
