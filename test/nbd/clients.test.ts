/**
 * NBD exports with the real Debian clients against real `snapswarm node` processes (file:// storage,
 * libp2p over 127.0.0.1): nbdcopy of a build still pending on its origin, read on another node (frames
 * from the peer), equals the source; qemu-img compare agrees; nbdinfo lists the started exports and
 * maps the build's holes; a read-only export refuses writes with EPERM at the server; qemu-io writes
 * to an overlay, reads back, flushes, and a child build paused from that overlay reads, cold on a
 * third node, as the parent with those writes.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type NodeProc, getJson, pause, waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'
import { metric, nbdsh, nbdUri, run, runOk, sha, socketOf, startExport } from './helpers.ts'

const MiB = 1024 * 1024
/** The rootfs source has zeros here: stored as a hole (the nil build), mapped as one by base:allocation. */
const ZEROS = { start: 4 * MiB, end: 5 * MiB }

let env: TestNodes
let dir: string
let origin: NodeProc
let reader: NodeProc
let readerDir: string
let parent: string
let rootfs: { path: string; data: Buffer }
let memfile: { path: string; data: Buffer }

function node(name: string, extra: string[]): Promise<NodeProc> {
  return env.startTestNode(name, { process: true, args: extra })
}

async function source(name: string, size: number, seed: number, zeros?: { start: number; end: number }): Promise<{ path: string; data: Buffer }> {
  const data = new VmDataGenerator(seed).next(size)
  if (zeros) data.fill(0, zeros.start, zeros.end)
  const path = join(dir, name)
  await writeFile(path, data)
  return { path, data }
}

async function state(api: string, id: string): Promise<string | undefined> {
  const r = await getJson(`${api}/v1/builds/${id}`)
  return r.status === 200 ? (r.body.state as string) : undefined
}

before(async () => {
  env = await testNodes({
    prefix: 'nbd',
    clusterKey: true,
    config: {
      peers: { announceIntervalMs: 300, announceTtlMs: 3000, requestTimeoutMs: 5000, stallTimeoutMs: 2000 },
      switchover: { finalHeaderPollMs: 3000 },
      node: { pendingGraceMs: 600_000 },
    },
  })
  dir = env.dir
  // The origin uploads slowly, so the build stays pending while the reader copies it from the origin.
  origin = await node('origin', ['--upload-rate', '400000'])
  readerDir = join(dir, 'reader')
  reader = await node('reader', ['--bootstrap', origin.addrs[0]])
  rootfs = await source('rootfs', 16 * MiB, 61, ZEROS)
  memfile = await source('memfile', 8 * MiB, 62)
  parent = randomUUID()
  const p = await pause(origin.api, parent, { files: { rootfs: rootfs.path, memfile: memfile.path } })
  assert.equal(p.status, 202, JSON.stringify(p.body))
  await waitFor('the reader to see the build pending', async () => (await state(reader.api, parent)) === 'pending', 30_000)
})

after(async () => {
  await env?.close()
})

test('nbdcopy of a build pending on another node equals the source byte for byte, frames from the peer', async () => {
  assert.equal(await state(reader.api, parent), 'pending')
  const out = join(dir, 'copy-rootfs')
  await runOk('nbdcopy', [nbdUri(socketOf(readerDir), `${parent}/rootfs`), out])
  assert.equal(sha(await readFile(out)), sha(rootfs.data))
  const fromPeer = await metric(reader.api, /snapswarm_frame_bytes_fetched_total\{source="peer"\} (\d+)/)
  assert.ok(fromPeer > 0, `expected frames fetched from the origin, found ${fromPeer} bytes`)
})

test('qemu-img compare: the memfile export and the raw source are identical', async () => {
  const r = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', memfile.path, nbdUri(socketOf(readerDir), `${parent}/memfile`)])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /Images are identical/)
})

test('nbdinfo --list shows the started exports; GET /v1/exports lists them; base:allocation maps the holes', async () => {
  await startExport(reader.api, { build: parent, file: 'memfile' })
  await startExport(reader.api, { build: parent, file: 'rootfs', overlay: 'vm1' })
  const list = await runOk('nbdinfo', ['--list', nbdUri(socketOf(readerDir))])
  assert.match(list, new RegExp(`export="${parent}/memfile"`))
  assert.match(list, new RegExp(`export="${parent}/rootfs@vm1"`))
  const api = await getJson(`${reader.api}/v1/exports`)
  const names = (api.body.exports as { name: string; readOnly: boolean }[]).map((e) => `${e.name}:${e.readOnly}`)
  assert.deepEqual(names, [`${parent}/memfile:true`, `${parent}/rootfs@vm1:false`])
  // nbdinfo --map: "offset length type description"; the zeroed MiB of the source is a hole that reads as zeros.
  const map = await runOk('nbdinfo', ['--map', nbdUri(socketOf(readerDir), `${parent}/rootfs`)])
  const extents = map.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number))
  const hole = extents.find(([off, len, type]) => off <= ZEROS.start && off + len >= ZEROS.end && type === 3)
  assert.ok(hole, `expected a hole,zero extent over ${ZEROS.start}-${ZEROS.end}, found:\n${map}`)
  assert.equal(extents.reduce((s, [, len]) => s + len, 0), rootfs.data.byteLength)
})

test('a read-only export refuses writes with EPERM from the server', async () => {
  const script = [
    'h.set_strict_mode(0)', // the client would refuse itself otherwise: we want the server's answer
    `h.connect_uri("${nbdUri(socketOf(readerDir), `${parent}/rootfs`)}")`,
    'print("read_only", h.is_read_only())',
    'try:',
    '    h.pwrite(b"x" * 4096, 0)',
    '    print("written")',
    'except nbd.Error as e:',
    '    print("errno", e.errno, e.string)',
    'print("still", h.pread(4096, 0) == h.pread(4096, 0))',
  ].join('\n')
  const r = await nbdsh(script)
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /read_only True/)
  // "command failed": the server's answer, not the client refusing by itself.
  assert.match(r.stdout, /errno EPERM .*write: command failed: Operation not permitted/)
  assert.match(r.stdout, /still True/)
})

test('qemu-io writes to an overlay, reads back, flushes; a child paused from it reads cold on a third node as parent-with-writes', async () => {
  const uri = nbdUri(socketOf(readerDir), `${parent}/rootfs@vm1`)
  const writes: [number, number, number][] = [
    [0x5a, 0, 65536],
    [0xa5, ZEROS.start + 8192, 8192], // inside the parent's hole
    [0x3c, 200_045, 100], // unaligned: read-modify-write of one block
    [0x77, 16 * MiB - 4096, 4096], // the last block
  ]
  const expected = Buffer.from(rootfs.data)
  const args: string[] = ['-f', 'raw']
  for (const [p, off, len] of writes) {
    args.push('-c', `write -P ${p} ${off} ${len}`)
    expected.fill(p, off, off + len)
  }
  for (const [p, off, len] of writes) args.push('-c', `read -P ${p} ${off} ${len}`)
  args.push('-c', 'flush', uri)
  const io = await run('qemu-io', args)
  assert.equal(io.code, 0, io.stdout + io.stderr)
  assert.doesNotMatch(io.stdout, /Pattern verification failed/)
  // The merged view: overlay blocks over the parent.
  const merged = join(dir, 'merged')
  await runOk('nbdcopy', [uri, merged])
  assert.equal(sha(await readFile(merged)), sha(expected))
  // base:allocation through the overlay: the blocks written inside the parent's hole are data now,
  // the rest of the hole still reads as one.
  const map = await runOk('nbdinfo', ['--map', uri])
  const extents = map.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number))
  const at = (off: number) => extents.find(([o, len]) => o <= off && off < o + len)!
  assert.equal(at(ZEROS.start + 8192)[2], 0, `expected data at the write inside the hole, found:\n${map}`)
  assert.equal(at(ZEROS.start)[2], 3)
  assert.equal(at(ZEROS.end - 1)[2], 3)
  const overlayBytes = await metric(reader.api, new RegExp(`snapswarm_nbd_overlay_bytes\\{export="${parent}/rootfs@vm1"\\} (\\d+)`))
  assert.equal(overlayBytes, (16 + 2 + 1 + 1) * 4096)

  const child = randomUUID()
  const p = await pause(reader.api, child, { overlay: 'vm1' })
  assert.equal(p.status, 202, JSON.stringify(p.body))
  // The child's final header waits for the parent's upload (slow on purpose), then its own.
  await waitFor('the child to be uploaded', async () => (await state(reader.api, child)) === 'uploaded', 120_000)
  const info = await getJson(`${reader.api}/v1/builds/${child}`)
  assert.deepEqual(Object.keys(info.body.files as object), ['rootfs'])

  const third = await node('third', ['--bootstrap', reader.addrs[0]])
  const out = join(dir, 'child-rootfs')
  await runOk('nbdcopy', [nbdUri(socketOf(join(dir, 'third')), `${child}/rootfs`), out])
  assert.equal(sha(await readFile(out)), sha(expected))
  assert.equal(await state(third.api, child), 'uploaded')
})
