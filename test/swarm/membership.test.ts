/**
 * Membership with real `snapswarm node` processes over 127.0.0.1, in a star of 8 (every node
 * bootstraps to node 0) and a chain of 8 (each to the previous one): every node comes to know and
 * connect to every other; a build paused on a leaf, held pending there (its upload crawls), is read
 * byte-exactly on every other node; another leaf's build, once uploaded, is announced `uploaded` to
 * every node; a killed origin is no longer listed as a place to read from. A stranger with another
 * cluster key is refused, and both sides say so at warn.
 */
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { writeClusterKey } from '../../src/p2p/admission.ts'
import { VmDataGenerator } from '../../src/util/vmdata.ts'
import { getJson, type NodeProc, pause, readRange, waitFor } from '../../bench/lib/procs.ts'
import { CLUSTER_TIMINGS, mergeConfig, type TestNodes, testNodes } from '../helpers/node.ts'

const MiB = 1024 * 1024
const N = 8
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const CONFIG = mergeConfig(CLUSTER_TIMINGS, { cluster: { memberIntervalMs: 300, memberTtlMs: 3000 } })

interface Described {
  state?: string
  peers?: { peer: string; state: string }[]
  readableFrom?: string[]
}

async function describeOn(n: NodeProc, id: string): Promise<Described> {
  const r = await getJson(`${n.api}/v1/builds/${id}`)
  return r.status === 200 ? (r.body as Described) : {}
}

async function connectedOf(n: NodeProc): Promise<string[]> {
  return (await getJson(`${n.api}/v1/peers`)).body.connected as string[]
}

async function startCluster(env: TestNodes, topology: 'star' | 'chain'): Promise<NodeProc[]> {
  const nodes: NodeProc[] = []
  for (let i = 0; i < N; i++) {
    const to = i === 0 ? [] : ['--bootstrap', (topology === 'star' ? nodes[0] : nodes[i - 1]).addrs[0]]
    // The last node is the leaf that holds a build pending: its upload crawls (32 KiB/s).
    const crawl = i === N - 1 ? ['--upload-rate', String(32 * 1024)] : []
    nodes.push(await env.startTestNode(`${topology}-${i}`, { process: true, args: [...to, ...crawl] }))
  }
  await waitFor(
    `a full mesh of ${N} (${topology})`,
    async () => {
      for (const n of nodes) {
        const c = new Set(await connectedOf(n))
        if (!nodes.every((m) => m === n || c.has(m.peerId))) return false
      }
      return true
    },
    90_000,
  )
  return nodes
}

async function memfile(env: TestNodes, size: number, seed: number): Promise<{ path: string; data: Buffer }> {
  const data = new VmDataGenerator(seed).next(size)
  const path = join(env.dir, `memfile-${seed}`)
  await writeFile(path, data)
  return { path, data }
}

for (const topology of ['star', 'chain'] as const) {
  describe(`a ${topology} of ${N} nodes`, () => {
    let env: TestNodes
    after(() => env?.close())

    test('regression: a build pending on one node was not readable on nodes not connected to it (announcements reached direct neighbours only): the cluster becomes a full mesh, the pending build is read byte-exactly on every other node, uploaded reaches every node, a dead origin is no longer offered', async () => {
      env = await testNodes({ prefix: `swarm-members-${topology}`, clusterKey: true, config: CONFIG })
      const nodes = await startCluster(env, topology)
      const leaf = nodes[N - 1]
      const others = nodes.slice(0, N - 1)

      const pending = await memfile(env, 8 * MiB, 31)
      const id = randomUUID()
      assert.equal((await pause(leaf.api, id, { files: { memfile: pending.path } })).status, 202)
      for (const n of others) {
        await waitFor(`node ${n.peerId.slice(-6)} to see ${id} pending at the leaf`, async () => {
          const d = await describeOn(n, id)
          return d.state === 'pending' && d.readableFrom?.includes('peers') && d.peers?.some((p) => p.peer === leaf.peerId && p.state === 'pending')
        })
      }
      const reads = await Promise.all(others.map((n) => readRange(n.api, id, 'memfile', 0, pending.data.byteLength - 1)))
      for (const [i, r] of reads.entries()) {
        assert.equal(r.status, 206, `node ${i}: ${r.text}`)
        assert.equal(sha(r.bytes), sha(pending.data), `node ${i} read other bytes`)
      }
      assert.ok(!existsSync(join(env.bucket, id, 'memfile.header')), 'every read finished while the build was not in storage')

      // A build paused on node 1 (its upload is not throttled): every node hears it `uploaded` from its origin.
      const origin = nodes[1]
      const small = await memfile(env, 2 * MiB, 32)
      const id2 = randomUUID()
      assert.equal((await pause(origin.api, id2, { files: { memfile: small.path } })).status, 202)
      for (const n of nodes) {
        if (n === origin) continue
        await waitFor(
          `node ${n.peerId.slice(-6)} to hear ${id2} uploaded`,
          async () => (await describeOn(n, id2)).peers?.some((p) => p.peer === origin.peerId && p.state === 'uploaded'),
          60_000,
        )
      }

      // The pending origin dies: no node offers it any more (the build is in no storage either).
      await leaf.kill()
      for (const n of others) {
        await waitFor(`node ${n.peerId.slice(-6)} to stop offering the dead origin`, async () => {
          const d = await describeOn(n, id)
          return !d.readableFrom?.includes('peers') && !d.peers?.some((p) => p.peer === leaf.peerId)
        })
      }
    })
  })
}

describe('a stranger', () => {
  let env: TestNodes
  after(() => env?.close())

  test('with another cluster key is refused, and both sides warn, rate-limited', async () => {
    env = await testNodes({ prefix: 'swarm-stranger', clusterKey: true, config: mergeConfig(CONFIG, { cluster: { warnIntervalMs: 1000 } }) })
    const member = await env.startTestNode('member', { process: true })
    const otherKey = join(env.dir, 'other.key')
    await writeClusterKey(otherKey)
    const stranger = await env.startTestNode('stranger', { process: true, args: ['--cluster-key', otherKey, '--bootstrap', member.addrs[0]] })
    // The stranger redials with backoff; within an interval further failures are held back and counted
    // in the next line: a line with `suppressed` shows both the warning and its rate limit.
    const heldBack = (log: string, msg: string) => log.split('\n').some((l) => l.includes(msg) && /"suppressed":[1-9]/.test(l))
    await waitFor('the stranger to warn (rate-limited) that its bootstrap peer cannot be reached', async () => heldBack(stranger.stderr(), 'cannot reach bootstrap peer'), 60_000)
    await waitFor('the member to warn (rate-limited) about the refused handshake', async () => heldBack(member.stderr(), 'refused an inbound handshake'), 60_000)
    assert.deepEqual(await connectedOf(member), [])
    assert.deepEqual(await connectedOf(stranger), [])
  })
})
