/**
 * Raw builds end to end: a raw build pushed to a real bucket (a directory and fake-gcs-server) carries
 * chunk digests, so bytes flipped in the stored object are never served: `read` fails, a cold node's
 * GET fails, `inspect --verify` names the chunk. Legacy V3 raw builds stay readable, and
 * `inspect --verify` says plainly that they cannot be verified. A node pausing with compression none
 * writes the same verifiable raw builds, and its peers verify the pending raw copy chunk by chunk.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { FrameTable } from '../../src/format/frame-table.ts'
import { encodeHeader } from '../../src/format/header.ts'
import { singleLayerHeader } from '../../src/format/mapping.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { runCli } from '../../bench/lib/cli.ts'
import { type FakeGcs, startFakeGcs } from '../../bench/lib/fake-gcs.ts'
import { type NodeProc, getJson, pause, readRange, waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
const SIZE = 9 * MiB + 1234
/** Inside chunk 2 of the default 2 MiB frames. */
const FLIP_AT = 5 * MiB + 100

let env: TestNodes
let dir: string
let gcs: FakeGcs
let data: Buffer

before(async () => {
  env = await testNodes({ prefix: 'raw-integrity', clusterKey: true })
  dir = env.dir
  data = new VmDataGenerator(44).next(SIZE)
  await writeFile(join(dir, 'memfile'), data)
  gcs = await startFakeGcs()
})
after(async () => {
  await env?.close()
  await gcs.stop()
})

interface Backend {
  readonly name: string
  readonly storage: string
  readonly args: string[]
  readonly env: NodeJS.ProcessEnv
  /** Flip `n` bytes of a stored object behind the store's back (rot, or someone writing the bucket). */
  flip(object: string, at: number, n: number): Promise<void>
}

function fileBackend(): Backend {
  const bucket = join(dir, 'bucket')
  return {
    name: 'file://',
    storage: pathToFileURL(bucket).href,
    args: [],
    env: {},
    async flip(object, at, n) {
      const path = join(bucket, object)
      const bytes = await readFile(path)
      for (let i = 0; i < n; i++) bytes[at + i] ^= 0xff
      await writeFile(path, bytes)
    },
  }
}

function gcsBackend(): Backend {
  return {
    name: 'the GCS emulator',
    storage: gcs.url,
    args: ['--gcs-endpoint', gcs.endpoint],
    env: { STORAGE_EMULATOR_HOST: gcs.endpoint },
    async flip(object, at, n) {
      const base = `${gcs.endpoint}/storage/v1/b/${gcs.bucket}/o/${encodeURIComponent(object)}`
      const res = await fetch(`${base}?alt=media`)
      assert.equal(res.status, 200)
      const bytes = Buffer.from(await res.arrayBuffer())
      for (let i = 0; i < n; i++) bytes[at + i] ^= 0xff
      const put = await fetch(`${gcs.endpoint}/upload/storage/v1/b/${gcs.bucket}/o?uploadType=media&name=${encodeURIComponent(object)}`, {
        method: 'POST',
        body: bytes,
      })
      assert.equal(put.status, 200, await put.text())
    },
  }
}

/** A cold node on the bucket: nothing cached, no peers, so storage is its only source. */
async function coldNode(b: Backend, name: string): Promise<NodeProc> {
  return env.startTestNode(name, { process: true, storage: b.storage, args: b.args, env: b.env })
}

/** GET a range; `ok` only for a complete 206 body (a cut body is an error: fetch rejects). */
async function getRange(api: string, id: string, start: number, end: number): Promise<{ status: number; body?: Buffer; error?: string }> {
  try {
    const res = await fetch(`${api}/v1/builds/${id}/memfile`, { headers: { range: `bytes=${start}-${end}` } })
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) }
  } catch (err) {
    return { status: 0, error: (err as Error).message }
  }
}

describe('raw builds are verified chunk by chunk', () => {
  for (const [where, make] of [['file://', fileBackend], ['the GCS emulator', gcsBackend]] as const) {
    test(`regression: raw builds have no integrity at all (item 4): flipped bytes in a raw object on ${where} are never served`, async () => {
      const b = make()
      const id = randomUUID()
      const pushed = await runCli(['push', '--storage', b.storage, '--build-id', id, '--memfile', join(dir, 'memfile'), '--codec', 'none', ...b.args], { env: b.env })
      assert.equal(pushed.code, 0, pushed.stderr)

      const inspect = await runCli(['inspect', '--storage', b.storage, id, '--json', ...b.args], { env: b.env })
      assert.equal(inspect.code, 0, inspect.stderr)
      const layer = JSON.parse(inspect.stdout.toString()).memfile.header.builds[0]
      assert.equal(JSON.parse(inspect.stdout.toString()).memfile.header.version, 4, 'a raw build is written with a V4 header')
      assert.deepEqual([layer.codec, layer.frames, layer.chunkDigests], ['none', 0, { chunkSize: 2 * MiB, chunks: 5 }])
      const good = await runCli(['inspect', '--storage', b.storage, id, '--verify', ...b.args], { env: b.env })
      assert.equal(good.code, 0, good.stderr)
      assert.match(good.stdout.toString(), /verified .*\/memfile: 5 raw chunks against their SHA-256 digests, .*sha256 ok/)

      await b.flip(`${id}/memfile`, FLIP_AT, 16)

      // The CLI reader: the flipped chunk fails with a clear error; an untouched chunk still reads exactly.
      const bad = await runCli(['read', '--storage', b.storage, id, 'memfile', '--offset', String(FLIP_AT - 100), '--length', '4096', ...b.args], { env: b.env })
      assert.notEqual(bad.code, 0, 'read of a flipped raw chunk must fail')
      assert.equal(bad.stdout.byteLength, 0, 'not one byte of the flipped chunk reaches stdout')
      assert.match(bad.stderr, /SHA-256 mismatch/)
      const clean = await runCli(['read', '--storage', b.storage, id, 'memfile', '--offset', String(MiB), '--length', String(MiB), ...b.args], { env: b.env })
      assert.equal(clean.code, 0, clean.stderr)
      assert.ok(clean.stdout.equals(data.subarray(MiB, 2 * MiB)))

      // A cold node: never a complete 206 for the flipped range; the clean range is served exactly.
      const node = await coldNode(b, `cold-${id}`)
      const flipped = await getRange(node.api, id, FLIP_AT - 100, FLIP_AT + 4000)
      assert.ok(flipped.status === 0 || flipped.status >= 500, `expected an error status or a cut response, found ${flipped.status}`)
      const served = await getRange(node.api, id, 0, 4095)
      assert.equal(served.status, 206)
      assert.ok(served.body!.equals(data.subarray(0, 4096)))
      await node.stop()

      // inspect --verify names the chunk, and exits non-zero.
      const verify = await runCli(['inspect', '--storage', b.storage, id, '--verify', ...b.args], { env: b.env })
      assert.equal(verify.code, 4, verify.stderr)
      assert.match(verify.stderr, /ERR_VERIFY_FAILED: .*\/memfile: chunk 2 at offset 4194304\+2097152: SHA-256 expected [0-9a-f]{64}, found [0-9a-f]{64}/)
    })
  }

  test('regression: raw builds have no integrity at all (item 4): a node pausing with compression none stores chunk digests; peers read the pending raw copy verified', async () => {
    const b = fileBackend()
    const config = { compression: { default: { codec: 'none' } }, peers: { announceIntervalMs: 300, announceTtlMs: 3000 } }
    const start = (name: string, extra: string[] = []) => env.startTestNode(name, { process: true, storage: b.storage, config, args: extra })
    const origin = await start('pause-origin', ['--upload-rate', '2000000'])
    const peer = await start('pause-peer', ['--bootstrap', origin.addrs[0]])
    const id = randomUUID()
    const accepted = await pause(origin.api, id, { files: { memfile: join(dir, 'memfile') } })
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body))
    // While the upload runs (rate-limited), the peer reads the origin's raw copy, every chunk checked.
    await waitFor('the build pending on the peer', async () => (await getJson(`${peer.api}/v1/builds/${id}`)).body.state === 'pending')
    const pending = await readRange(peer.api, id, 'memfile', 3 * MiB, 7 * MiB - 1)
    assert.equal(pending.status, 206, pending.text)
    assert.ok(pending.bytes.equals(data.subarray(3 * MiB, 7 * MiB)))
    await waitFor('the upload', async () => (await getJson(`${origin.api}/v1/builds/${id}`)).body.state === 'uploaded', 60_000)

    const inspect = await runCli(['inspect', '--storage', b.storage, id, '--json'])
    const h = JSON.parse(inspect.stdout.toString()).memfile.header
    assert.equal(h.version, 4)
    assert.deepEqual(h.builds[0].chunkDigests, { chunkSize: 2 * MiB, chunks: 5 })
    await b.flip(`${id}/memfile`, FLIP_AT, 16)
    const cold = await start('pause-cold')
    const got = await getRange(cold.api, id, FLIP_AT - 100, FLIP_AT + 4000)
    assert.ok(got.status === 0 || got.status >= 500, `expected an error status or a cut response, found ${got.status}`)
    const verify = await runCli(['inspect', '--storage', b.storage, id, '--verify'])
    assert.equal(verify.code, 4)
    assert.match(verify.stderr, /chunk 2 at offset 4194304\+2097152: SHA-256 expected/)
    await Promise.all([origin.stop(), peer.stop(), cold.stop()])
  })

  test('regression: raw builds have no integrity at all (item 4): a legacy V3 raw build stays readable and inspect --verify says it cannot be verified', async () => {
    const b = fileBackend()
    const id = randomUUID()
    const info = { buildId: id, fileSize: SIZE, sha256: new Uint8Array(32), frames: new FrameTable('none', []) }
    const header = encodeHeader(singleLayerHeader({ buildId: id, kind: 'memfile', info }))
    assert.equal(header.byteLength, 64 + 40, 'a V3 header: metadata and one mapping')
    await mkdir(join(dir, 'bucket', id), { recursive: true })
    await writeFile(join(dir, 'bucket', id, 'memfile'), data)
    await writeFile(join(dir, 'bucket', id, 'memfile.header'), header)

    const read = await runCli(['read', '--storage', b.storage, id, 'memfile'])
    assert.equal(read.code, 0, read.stderr)
    assert.ok(read.stdout.equals(data), 'every byte of the legacy build reads back')

    const refused = await runCli(['inspect', '--storage', b.storage, id, '--verify'])
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /ERR_UNVERIFIABLE: .*\/memfile: cannot be verified: a legacy raw layer carries no checksum.*--allow-unverifiable/)
    assert.doesNotMatch(refused.stdout.toString(), /verified .*memfile/, 'never reported as verified')

    const allowed = await runCli(['inspect', '--storage', b.storage, id, '--verify', '--allow-unverifiable'])
    assert.equal(allowed.code, 0, allowed.stderr)
    assert.match(allowed.stdout.toString(), new RegExp(`NOT verified \\(allowed by --allow-unverifiable\\) .*/memfile: cannot be verified: .*checked only that it exists and holds ${SIZE} bytes`))
  })
})
