/**
 * Hostile NBD clients against a real `snapswarm node` process: malformed handshakes, unknown and
 * oversized options, reads past the end and huge lengths, 1,000 outstanding requests, and a client
 * that never reads its replies. Each gets its NBD answer (or is disconnected when the stream cannot
 * be followed); the node stays healthy and bounded in memory, and the other exports keep serving
 * byte-exact data to the real clients.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type NodeProc, getJson, pause, waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'
import { metric, nbdsh, nbdUri, runOk, sha, socketOf, startExport } from './helpers.ts'
import { RawNbd } from './raw-client.ts'

const MiB = 1024 * 1024
const SIZE = 8 * MiB
const EPERM = 1
const EINVAL = 22
const ENOSPC = 28
const EOVERFLOW = 75
const READ = 0
const WRITE = 1
const BLOCK_STATUS = 7

let env: TestNodes
let dir: string
let dataDir: string
let node: NodeProc
let id: string
let memfile: Buffer
let rootfs: Buffer

before(async () => {
  env = await testNodes({ prefix: 'nbd-hostile', config: { nbd: { handshakeTimeoutMs: 1500, maxInFlight: 64, maxInFlightBytes: 64 * MiB, maxInFlightBytesTotal: 96 * MiB } } })
  dir = env.dir
  dataDir = join(dir, 'node')
  node = await env.startTestNode('node', { process: true })
  memfile = new VmDataGenerator(71).next(SIZE)
  rootfs = new VmDataGenerator(72).next(SIZE)
  await writeFile(join(dir, 'memfile'), memfile)
  await writeFile(join(dir, 'rootfs'), rootfs)
  id = randomUUID()
  const p = await pause(node.api, id, { files: { memfile: join(dir, 'memfile'), rootfs: join(dir, 'rootfs') } })
  assert.equal(p.status, 202)
  await waitFor('the build to upload', async () => (await getJson(`${node.api}/v1/builds/${id}`)).body.state === 'uploaded', 60_000)
  await startExport(node.api, { build: id, file: 'memfile' })
  await startExport(node.api, { build: id, file: 'rootfs', overlay: 'hostile' })
})

after(async () => {
  await env?.close()
})

async function client(): Promise<RawNbd> {
  return RawNbd.connect(socketOf(dataDir))
}

/** The node answers its probes and another export still copies byte-exactly. */
async function stillServing(): Promise<void> {
  assert.equal((await fetch(`${node.api}/healthz`)).status, 200)
  const out = join(dir, `copy-${randomUUID()}`)
  await runOk('nbdcopy', [nbdUri(socketOf(dataDir), `${id}/memfile`), out])
  assert.equal(sha(await readFile(out)), sha(memfile))
  await rm(out)
}

function rssKiB(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+)/.exec(s)![1]))
}

test('malformed handshakes are cut, unknown options refused, and the haggling goes on after a refusal', async () => {
  const badFlags = await client()
  await badFlags.greet(0xfffffff0)
  assert.ok(await badFlags.waitClosed(), 'unknown client flags: expected the server to close')

  const badMagic = await client()
  await badMagic.greet()
  badMagic.write(Buffer.from('GARBAGE!GARBAGE!'))
  assert.ok(await badMagic.waitClosed(), 'an option without IHAVEOPT: expected the server to close')

  const huge = await client()
  await huge.greet()
  huge.sendOption(7, Buffer.alloc(0), 0xffffffff)
  assert.equal((await huge.optionReply())?.type, 0x80000009) // NBD_REP_ERR_TOO_BIG
  assert.ok(await huge.waitClosed())

  const silent = await client()
  await silent.read(18)
  assert.ok(await silent.waitClosed(10_000), 'a client that never chooses an export: expected the handshake timeout to close it')

  const oldStyleUnknown = await client()
  await oldStyleUnknown.greet()
  oldStyleUnknown.sendOption(1, Buffer.from('no-such-export'))
  assert.ok(await oldStyleUnknown.waitClosed(), 'NBD_OPT_EXPORT_NAME of an unknown export: the protocol says close')

  const c = await client()
  await c.greet()
  c.sendOption(99, Buffer.from('whatever'))
  assert.deepEqual([(await c.optionReply())?.type], [0x80000001]) // NBD_REP_ERR_UNSUP
  c.sendOption(6, Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0])) // INFO whose name length overruns its data
  assert.equal((await c.optionReply())?.type, 0x80000003) // NBD_REP_ERR_INVALID
  c.sendOption(5) // STARTTLS: not offered
  assert.equal((await c.optionReply())?.type, 0x80000002) // NBD_REP_ERR_POLICY
  await assert.rejects(c.go('00000000-0000-0000-0000-000000000000/memfile@nope'), /0x80000006/) // NBD_REP_ERR_UNKNOWN
  assert.equal(await c.go(`${id}/memfile`), SIZE)
  c.request(READ, 1n, 0n, 4096)
  const r = await c.reply()
  assert.equal(r?.error, 0)
  assert.ok(r?.data.equals(memfile.subarray(0, 4096)))
  c.destroy()
  await stillServing()
})

test('reads past the end, huge lengths, unknown commands and writes to a read-only export get their NBD errors; the connection goes on', async () => {
  const ro = await client()
  await ro.greet()
  await ro.go(`${id}/memfile`)
  const cases: [string, () => void, number][] = [
    ['read at the end', () => ro.request(READ, 1n, BigInt(SIZE), 4096), EINVAL],
    ['read at 2^63', () => ro.request(READ, 2n, 1n << 63n, 4096), EINVAL],
    ['read of 4 GiB', () => ro.request(READ, 3n, 0n, 0xffffffff), EINVAL],
    ['block status without a context', () => ro.request(BLOCK_STATUS, 4n, 0n, 4096), EINVAL],
    ['unknown command 99', () => ro.request(99, 5n, 0n, 4096), EINVAL],
    ['write to a read-only export', () => ro.request(WRITE, 6n, 0n, 4096, 0, Buffer.alloc(4096, 1)), EPERM],
  ]
  for (const [what, send, errno] of cases) {
    send()
    const r = await ro.reply()
    assert.equal(r?.error, errno, `${what}: expected NBD error ${errno}, found ${r?.error} (${r?.message})`)
  }
  ro.request(READ, 7n, 4096n, 8192)
  assert.ok((await ro.reply())?.data.equals(memfile.subarray(4096, 4096 + 8192)))
  ro.destroy()

  const rw = await client()
  await rw.greet()
  await rw.go(`${id}/rootfs@hostile`)
  rw.request(WRITE, 1n, 0n, 40 * MiB, 0, Buffer.alloc(40 * MiB, 7)) // above the 32 MiB the server takes: skipped, refused
  assert.equal((await rw.reply(30_000))?.error, EOVERFLOW)
  rw.request(WRITE, 2n, BigInt(SIZE - 4096), 8192, 0, Buffer.alloc(8192, 7))
  assert.equal((await rw.reply())?.error, ENOSPC)
  rw.request(READ, 3n, 0n, 65536)
  assert.ok((await rw.reply())?.data.equals(rootfs.subarray(0, 65536)), 'refused writes must change nothing')
  rw.destroy()
  await stillServing()
})

test('1,000 outstanding requests on one connection are all answered, each with its own bytes', async () => {
  const c = await client()
  await c.greet()
  await c.go(`${id}/memfile`)
  const offsets = new Map<bigint, number>()
  for (let i = 0; i < 1000; i++) {
    const off = ((i * 7919) % (SIZE / 4096)) * 4096
    offsets.set(BigInt(i + 1), off)
    c.request(READ, BigInt(i + 1), BigInt(off), 4096)
  }
  const seen = new Set<bigint>()
  for (let i = 0; i < 1000; i++) {
    const r = await c.reply(30_000)
    assert.ok(r, `reply ${i}: the server closed`)
    assert.equal(r.error, 0)
    const off = offsets.get(r.cookie)
    assert.ok(off !== undefined && !seen.has(r.cookie), `unexpected cookie ${r.cookie}`)
    seen.add(r.cookie)
    assert.ok(r.data.equals(memfile.subarray(off, off + 4096)), `cookie ${r.cookie}: wrong bytes for offset ${off}`)
  }
  c.destroy()
})

test('clients that never read their replies hold bounded memory; the node stays healthy and other exports serve', async (t) => {
  const before = await rssKiB(node.proc.pid!)
  const name = `${id}/memfile`
  const done = () => metric(node.api, new RegExp(`snapswarm_nbd_requests_total\\{export="${name}",command="read",result="ok"\\} (\\d+)`))
  const start = await done()
  const clients: RawNbd[] = []
  for (let k = 0; k < 4; k++) {
    const c = await client()
    await c.greet()
    await c.go(name)
    c.stopReading()
    // 1,000 reads of the whole 8 MiB file each: 32 GB asked for, never taken.
    for (let i = 0; i < 1000; i++) c.request(READ, BigInt(i + 1), 0n, SIZE)
    clients.push(c)
  }
  // The server answers what the budgets hold (64 MiB per connection, 96 MiB together, plus one
  // request per connection), then stops reading requests.
  let last = -1
  await waitFor('the answered count to settle', async () => {
    const n = (await done()) - start
    const settled = n > 0 && n === last
    last = n
    await new Promise((r) => setTimeout(r, 300))
    return settled
  })
  const grown = (await rssKiB(node.proc.pid!)) - before
  t.diagnostic(`answered ${last} of 4 × 1000 reads of 8 MiB; node RSS grew ${Math.round(grown / 1024)} MiB`)
  assert.ok(last <= 96 / 8 + 4 + 4, `expected the server to stop within the shared budget, found ${last} of 4000 reads answered`)
  assert.ok(grown < 400 * 1024, `expected the node's RSS to grow by less than 400 MiB, found ${Math.round(grown / 1024)} MiB`)
  await stillServing()
  for (const c of clients) c.destroy()
  await stillServing()
})

test('old clients: NBD_OPT_EXPORT_NAME and simple replies (data, and errors as errno values)', async () => {
  const c = await client()
  await c.greet() // no-zeroes: the export answer is size u64 + flags u16
  c.sendOption(1, Buffer.from(`${id}/memfile`))
  const answer = await c.read(10)
  assert.equal(Number(answer!.readBigUInt64BE(0)), SIZE)
  assert.equal(answer!.readUInt16BE(8) & 2, 2, 'read-only flag')
  c.request(READ, 9n, 65536n, 4096)
  const r = await c.simpleReply(4096)
  assert.deepEqual([r?.cookie, r?.error], [9n, 0])
  assert.ok(r?.data.equals(memfile.subarray(65536, 65536 + 4096)))
  c.request(READ, 10n, BigInt(SIZE), 4096)
  assert.deepEqual(await c.simpleReply(4096), { cookie: 10n, error: EINVAL, data: Buffer.alloc(0) })
  c.destroy()
})

test('stopping an export closes its connections; the other exports keep serving', async () => {
  await startExport(node.api, { build: id, file: 'memfile', overlay: 'short-lived' })
  const c = await client()
  await c.greet()
  await c.go(`${id}/memfile@short-lived`)
  c.request(READ, 1n, 0n, 4096)
  assert.equal((await c.reply())?.error, 0)
  const series = new RegExp(`snapswarm_nbd_requests_total\\{export="${id}/memfile@short-lived",command="read",result="ok"\\} 1`)
  assert.match(await (await fetch(`${node.api}/metrics`)).text(), series)
  const res = await fetch(`${node.api}/v1/exports?name=${encodeURIComponent(`${id}/memfile@short-lived`)}&discard=true`, { method: 'DELETE' })
  assert.equal(res.status, 200)
  assert.ok(await c.waitClosed(), 'the stopped export\'s client was disconnected')
  assert.doesNotMatch(await (await fetch(`${node.api}/metrics`)).text(), /short-lived/, 'a stopped export leaves no series behind')
  await stillServing()
})

test('NBD_CMD_CACHE pulls a range into the node\'s caches: a read of it afterwards fetches nothing', async () => {
  const fetched = () => metric(node.api, /snapswarm_fetches_started_total (\d+)/)
  const before = await fetched()
  const script = [
    `h.connect_uri("${nbdUri(socketOf(dataDir), `${id}/rootfs`)}")`,
    'print("can_cache", h.can_cache())',
    `h.cache(${4 * MiB}, ${4 * MiB})`,
    'print("cached")',
  ].join('\n')
  const r = await nbdsh(script)
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /can_cache True\ncached/)
  const afterCache = await fetched()
  assert.ok(afterCache > before, 'the cache command fetched the range')
  const out = await nbdsh([`h.connect_uri("${nbdUri(socketOf(dataDir), `${id}/rootfs`)}")`, `import sys; sys.stdout.buffer.write(h.pread(${4 * MiB}, ${4 * MiB}))`].join('\n'))
  assert.equal(out.code, 0, out.stderr)
  assert.equal(await fetched(), afterCache, 'the read after it fetched nothing')
})
