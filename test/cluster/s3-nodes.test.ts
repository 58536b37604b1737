/**
 * Real `snapswarm node` processes on S3: a node started with `--storage s3://bucket/prefix` (endpoint,
 * region and credentials from the AWS environment, pointing at moto's S3 server) pauses a build, which
 * it uploads as a native multipart upload of several parts; once it is stored the origin stops, and
 * another node, which never met it, reads every byte from S3 alone.
 */
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { type S3Server, startS3Server } from '../../bench/lib/s3-server.ts'
import { type FaultProxy, startFaultProxy } from '../storage/fault-proxy.ts'
import { getJson, pause, readRange, waitFor } from '../../bench/lib/procs.ts'
import { type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

let s3: S3Server
let proxy: FaultProxy
let env: TestNodes | undefined

before(async () => {
  s3 = await startS3Server()
  proxy = await startFaultProxy(s3.endpoint)
})
after(async () => {
  await env?.close()
  await proxy?.close()
  await s3?.stop()
})

test('a node on s3:// pauses a build; after the upload another node reads it from S3 alone', async () => {
  const bucket = await s3.createBucket('nodes')
  // 5 MiB parts (S3's minimum, enforced by the server here): the upload needs several parts.
  env = await testNodes({ prefix: 's3-nodes', clusterKey: true, storage: `s3://${bucket}/fleet`, config: { compression: { default: { partSize: 5 * MiB, codec: 'lz4' } } } })
  const dir = env.dir
  // The origin reaches S3 through a (pass-through) proxy that records its requests.
  const origin = await env.startTestNode('origin', { process: true, env: { ...s3.env, AWS_ENDPOINT_URL_S3: proxy.endpoint } })

  const data = new VmDataGenerator(21).next(24 * MiB)
  const memfile = join(dir, 'memfile')
  await writeFile(memfile, data)
  const id = randomUUID()
  const posted = await pause(origin.api, id, { files: { memfile } })
  assert.equal(posted.status, 202, JSON.stringify(posted.body))
  await waitFor('the upload to S3 to finish', async () => {
    const { body } = await getJson(`${origin.api}/v1/builds/${id}`)
    assert.notEqual(body.state, 'failed', JSON.stringify(body))
    return body.state === 'uploaded'
  }, 60_000)
  assert.deepEqual(await s3.raw(bucket), [`fleet/${id}/memfile.header`, `fleet/${id}/memfile.lz4`], 'the build, no claim, no multipart upload')
  const partNumber = (url: string) => Number(new URL(url, 'http://x').searchParams.get('partNumber'))
  const parts = proxy.requests.filter((r) => r.method === 'PUT' && r.url.includes('partNumber=')).sort((a, b) => partNumber(a.url) - partNumber(b.url))
  assert.ok(parts.length >= 2, `a multipart upload of several parts, found ${parts.length}`)
  assert.ok(parts.slice(0, -1).every((r) => Number(r.contentLength) === 5 * MiB), 'every part but the last has 5 MiB')
  assert.equal(await origin.stop(), 0)

  const reader = await env.startTestNode('reader', { process: true, env: s3.env })
  const whole = await readRange(reader.api, id, 'memfile', 0, data.byteLength - 1)
  assert.equal(whole.status, 206, whole.text)
  assert.equal(sha(whole.bytes), sha(data))
  const s = 7 * MiB + 4095
  const part = await readRange(reader.api, id, 'memfile', s, s + 3 * MiB)
  assert.equal(part.status, 206, part.text)
  assert.ok(part.bytes.equals(data.subarray(s, s + 3 * MiB + 1)), 'a ranged read equals the source')
  const metrics = await (await fetch(`${reader.api}/metrics`)).text()
  const fetched = metrics.split('\n').filter((l) => l.startsWith('snapswarm_frame_bytes_fetched_total{'))
  assert.equal(fetched.length, 1, `one source only: ${fetched}`)
  assert.match(fetched[0], /^snapswarm_frame_bytes_fetched_total\{source="storage"\} [1-9]\d*$/, 'every frame came from storage')
})
