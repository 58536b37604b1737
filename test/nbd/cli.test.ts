/**
 * `snapswarm nbd` and `snapswarm pause --overlay` against a real node process: an overlay export
 * started from the command line, written with qemu-io and flushed, survives a SIGKILL of the node
 * (restarted with the export in its config); a child paused from it with `--wait` reads as the
 * parent with the writes; stopping with --discard closes the export and deletes the overlay.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { runCli } from '../../bench/lib/cli.ts'
import { type NodeProc, getJson, pause, waitFor } from '../../bench/lib/procs.ts'
import { type ConfigTree, type TestNodes, testNodes } from '../helpers/node.ts'
import { nbdUri, run, runOk, sha, socketOf } from './helpers.ts'

const MiB = 1024 * 1024
let env: TestNodes
let dir: string
let dataDir: string
let node: NodeProc | undefined
let parent: string
let rootfs: Buffer

/** The node process (again: a restart on the same data dir) with `config`. */
async function start(config: ConfigTree): Promise<NodeProc> {
  node = await env.startTestNode('node', { process: true, config })
  return node
}

before(async () => {
  env = await testNodes({ prefix: 'nbd-cli' })
  dir = env.dir
  dataDir = join(dir, 'node')
  rootfs = new VmDataGenerator(81).next(4 * MiB)
  await writeFile(join(dir, 'rootfs'), rootfs)
  const n = await start({})
  parent = randomUUID()
  assert.equal((await pause(n.api, parent, { files: { rootfs: join(dir, 'rootfs') } })).status, 202)
  await waitFor('the parent to upload', async () => (await getJson(`${n.api}/v1/builds/${parent}`)).body.state === 'uploaded', 60_000)
})

after(async () => {
  await env?.close()
})

test('nbd start/list/stop and pause --overlay through the CLI; a flushed overlay survives a SIGKILL of the node', async () => {
  const name = `${parent}/rootfs@vm2`
  const started = await runCli(['nbd', 'start', '--api', node!.api, '--build', parent, '--file', 'rootfs', '--overlay', 'vm2'])
  assert.equal(started.code, 0, started.stderr)
  assert.equal(JSON.parse(started.stdout.toString()).name, name)
  const listed = await runCli(['nbd', 'list', '--api', node!.api])
  assert.deepEqual(
    JSON.parse(listed.stdout.toString()).exports.map((e: { name: string }) => e.name),
    [name],
  )

  const expected = Buffer.from(rootfs)
  expected.fill(0xe1, 8192, 8192 + 3 * 4096)
  expected.fill(0x1e, 3 * MiB, 3 * MiB + 4096)
  const io = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0xe1 8192 12288', '-c', `write -P 0x1e ${3 * MiB} 4096`, '-c', 'flush', nbdUri(socketOf(dataDir), name)])
  assert.equal(io.code, 0, io.stderr)

  // Killed without a chance to flush anything more; restarted with the export in its config.
  await node!.kill()
  // A diff copy a previous run left behind for a pause that is over (no such build here) goes at start.
  const staleDiff = join(dataDir, 'overlay-diffs', `${randomUUID()}-rootfs`)
  await mkdir(join(dataDir, 'overlay-diffs'), { recursive: true })
  await writeFile(staleDiff, 'left by a killed run')
  const n = await start({ nbd: { exports: [{ build: parent, file: 'rootfs', overlay: 'vm2' }] } })
  const out = join(dir, 'after-restart')
  await waitFor('the configured export to start', async () => ((await getJson(`${n.api}/v1/exports`)).body.exports as unknown[]).length === 1)
  await runOk('nbdcopy', [nbdUri(socketOf(dataDir), name), out])
  assert.equal(sha(await readFile(out)), sha(expected), 'the flushed writes are in the overlay after the restart')
  assert.ok(!existsSync(staleDiff), 'a stale diff copy is removed at start')

  const child = randomUUID()
  const paused = await runCli(['pause', '--api', n.api, '--build-id', child, '--overlay', 'vm2', '--wait'], { timeoutMs: 120_000 })
  assert.equal(paused.code, 0, paused.stderr)
  const childOut = join(dir, 'child')
  await runOk('nbdcopy', [nbdUri(socketOf(dataDir), `${child}/rootfs`), childOut])
  assert.equal(sha(await readFile(childOut)), sha(expected))
  assert.ok(!existsSync(join(dataDir, 'overlay-diffs', `${child}-rootfs`)), 'the diff copy is deleted once the child is uploaded')

  const stopped = await runCli(['nbd', 'stop', '--api', n.api, '--name', name, '--discard'])
  assert.equal(stopped.code, 0, stopped.stderr)
  assert.ok(!existsSync(join(dataDir, 'overlays', 'vm2')), 'discard deletes the overlay')
  assert.deepEqual((await getJson(`${n.api}/v1/exports`)).body.exports, [])
  const again = await runCli(['nbd', 'stop', '--api', n.api, '--name', name])
  assert.notEqual(again.code, 0)
  assert.match(again.stderr, /ERR_NOT_FOUND/)
})

test('pause --overlay of an overlay that is not attached is refused with ERR_NOT_FOUND and leaves nothing', async () => {
  const r = await runCli(['pause', '--api', node!.api, '--build-id', randomUUID(), '--overlay', 'nobody'])
  assert.notEqual(r.code, 0)
  assert.match(r.stderr, /ERR_NOT_FOUND: .*overlay nobody is not attached/)
})
