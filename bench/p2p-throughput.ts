/**
 * Peer-transfer figures: encrypted peer-to-peer transfer of compressed frames between two processes (a child
 * serves, this process fetches through PeerClient), as a ratio to raw node:net TCP of the same bytes
 * between the same processes, and to single-core node:crypto ChaCha20-Poly1305 (target ≥ 0.7 of the
 * AEAD figure). Variants: Noise with the library's default crypto (the "before"); with nodeNoiseCrypto;
 * with nodeNoiseCrypto and V8's --external-memory-accounted-in-global-limit (the "after": see GC_FLAG);
 * the same with the cluster key on (now a Noise prologue, free per byte; pnet before, 2x the CPU).
 * Also the CPU cost of a MiB (both processes), as a ratio to the first variant run.
 *
 * The machine is shared: variants (and the TCP and AEAD baselines) run round-robin, all children alive
 * at once, and each figure is the best of its rounds, so a burst of foreign load hits all alike.
 *
 * Run alone: node bench/p2p-throughput.ts. BENCH_P2P_MIB = MiB per run (default 128),
 * BENCH_P2P_BATCH = frames per request (default 8), BENCH_P2P_VARIANTS = comma-separated names (the first one is the CPU baseline). To profile
 * both processes: NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof' node bench/p2p-throughput.ts;
 * node flags for the serving child only: BENCH_P2P_CHILD_ARGS='--trace-gc'.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { writeClusterKey } from '../src/p2p/admission.ts'
import { createSnapswarmPeer, type SnapswarmPeer } from '../src/p2p/index.ts'
import { emit, MB, MiB } from './common.ts'

interface Variant {
  name: string
  noiseCrypto: 'node' | 'default'
  /** Cluster key on (src/p2p/admission.ts). */
  clusterKey: boolean
  /** One socket write per batch (src/p2p/write-coalescing.ts); the default, off only in the `_nocoalesce` variant. */
  coalesce?: boolean
  /** V8 counts ArrayBuffer memory in its global heap limit instead of forcing a full GC per 64 MB of it. */
  gcFlag: boolean
}

interface Running extends Variant {
  child: ChildProcess
  childPeer: string
  tcpPort: number
  sealedPort: number
  peer: SnapswarmPeer
  bestSecs: number
  bestCpuMs: number
}

// The flag set by tuneGcForBulkTransfer() (src/p2p/node.ts): without it every 64 MB of ArrayBuffers a peer
// transfer allocates (cipher output, socket reads) forces a full mark-compact, ~1/3 of the CPU here.
const GC_FLAG = 'external-memory-accounted-in-global-limit'

const VARIANTS: Variant[] = [
  { name: 'noise_default_crypto', noiseCrypto: 'default', clusterKey: false, gcFlag: false },
  { name: 'noise_node_crypto', noiseCrypto: 'node', clusterKey: false, gcFlag: false },
  { name: 'noise_node_crypto_gcflag', noiseCrypto: 'node', clusterKey: false, gcFlag: true },
  { name: 'noise_node_crypto_gcflag_clusterkey', noiseCrypto: 'node', clusterKey: true, gcFlag: true },
  { name: 'noise_node_crypto_gcflag_clusterkey_nocoalesce', noiseCrypto: 'node', clusterKey: true, gcFlag: true, coalesce: false },
]

export async function p2pThroughputBench(sizeMiB = Number(process.env.BENCH_P2P_MIB ?? 128), rounds = 3): Promise<void> {
  let aead = 0
  const dir = await mkdtemp(join(tmpdir(), 'snapswarm-bench-p2p-'))
  const running: Running[] = []
  try {
    await writeClusterKey(join(dir, 'swarm.key'))
    const key = await readFile(join(dir, 'swarm.key'))
    const wanted = process.env.BENCH_P2P_VARIANTS?.split(',')
    for (const v of VARIANTS.filter((x) => !wanted || wanted.includes(x.name))) running.push(await startVariant(v, v.clusterKey ? key : undefined, sizeMiB, dir))
    const bytes = sizeMiB * MiB
    let tcpSecs = Number.POSITIVE_INFINITY
    let sealedSecs = Number.POSITIVE_INFINITY
    for (let r = 0; r < rounds; r++) {
      aead = Math.max(aead, aeadThroughput())
      tcpSecs = Math.min(tcpSecs, await rawTcp(running[0].tcpPort, bytes))
      sealedSecs = Math.min(sealedSecs, await sealedTcp(running[0].sealedPort, bytes, SEAL_KEY))
      for (const v of running) await measure(v, bytes)
    }
    emit('aead_chacha20poly1305_1core_throughput', aead, 'MB/s', null)
    emit('raw_tcp_2proc_throughput', bytes / tcpSecs / MB, 'MB/s', null)
    // What a transport with nothing but the cipher reaches between two processes here: the ceiling of the target.
    emit('sealed_tcp_ceiling_2proc_vs_aead', bytes / sealedSecs / MB, 'MB/s', aead, '>= 0.7')
    for (const v of running) {
      const rate = bytes / v.bestSecs / MB
      emit(`p2p_frames_${v.name}_vs_raw_tcp`, rate, 'MB/s', bytes / tcpSecs / MB)
      emit(`p2p_frames_${v.name}_vs_aead`, rate, 'MB/s', aead, '>= 0.7')
      emit(`p2p_frames_${v.name}_vs_sealed_tcp_ceiling`, rate, 'MB/s', bytes / sealedSecs / MB)
      emit(`p2p_frames_${v.name}_cpu_vs_default`, v.bestCpuMs / sizeMiB, 'cpu ms/MiB', running[0].bestCpuMs / sizeMiB)
    }
  } finally {
    setFlagsFromString(`--no-${GC_FLAG}`) // back to V8's default for whatever runs next in this process
    for (const v of running) {
      await v.peer.stop()
      v.child.kill('SIGTERM')
    }
    await rm(dir, { recursive: true, force: true })
  }
}

async function startVariant(v: Variant, key: Buffer | undefined, sizeMiB: number, dir: string): Promise<Running> {
  const coalesceWrites = v.coalesce ?? true
  const { proc, info } = await spawnChild({ sizeMiB, noiseCrypto: v.noiseCrypto, clusterKey: key?.toString(), coalesceWrites, sealKey: SEAL_KEY_HEX }, v.gcFlag ? [`--${GC_FLAG}`] : [])
  const notHere = async () => ({ status: 'NOT_AVAILABLE' as const })
  const provider = { getHeader: notHere, getFrames: notHere, getBlob: notHere }
  const peer = await createSnapswarmPeer({ dataDir: join(dir, v.name), provider, noiseCrypto: v.noiseCrypto, clusterKey: key, coalesceWrites })
  await peer.start()
  await peer.node.dial(info.addrs[0])
  const inf = Number.POSITIVE_INFINITY
  return { ...v, child: proc, childPeer: info.peerId, tcpPort: info.tcpPort, sealedPort: info.sealedPort, peer, bestSecs: inf, bestCpuMs: inf }
}

/** One fetch of `bytes`; keeps the best wall time and the least CPU (this process + the child). */
async function measure(v: Running, bytes: number): Promise<void> {
  // The flag is read at GC time, so this process can switch it per variant (the child has it or not).
  setFlagsFromString(v.gcFlag ? `--${GC_FLAG}` : `--no-${GC_FLAG}`)
  const cpu0 = process.cpuUsage()
  const child0 = childCpuMs(v.child)
  const secs = await fetchAll(v.peer, v.childPeer, bytes)
  const cpu = process.cpuUsage(cpu0)
  v.bestSecs = Math.min(v.bestSecs, secs)
  v.bestCpuMs = Math.min(v.bestCpuMs, (cpu.user + cpu.system) / 1000 + childCpuMs(v.child) - child0)
}

/** User + system CPU of a child from /proc (Linux; clock ticks at 100 Hz). */
function childCpuMs(child: ChildProcess): number {
  const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/**
 * Fetch `bytes` as 1 MiB frames (a 2 MiB frame compressed ~2×), BENCH_P2P_BATCH (default 8) per
 * request, 4 requests in flight.
 */
async function fetchAll(peer: SnapswarmPeer, child: string, bytes: number): Promise<number> {
  const batches: { startC: number; sizeC: number }[][] = []
  const per = Number(process.env.BENCH_P2P_BATCH ?? 8)
  for (let off = 0; off < bytes; off += per * MiB) {
    batches.push(Array.from({ length: Math.min(per, (bytes - off) / MiB) }, (_, i) => ({ startC: off + i * MiB, sizeC: MiB })))
  }
  const buildId = '00000000-0000-4000-8000-000000000001'
  const t0 = performance.now()
  const worker = async (): Promise<void> => {
    for (let b = batches.pop(); b; b = batches.pop()) {
      const res = await peer.client.getFrames(child, buildId, 'memfile', 'zstd', b)
      if (res.status !== 'OK') throw new Error(`bench fetch answered ${res.status}`)
    }
  }
  await Promise.all([worker(), worker(), worker(), worker()])
  return (performance.now() - t0) / 1000
}

/** Seconds to receive `bytes` from the child's raw TCP server. */
function rawTcp(port: number, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    let got = 0
    const sock = connect(port, '127.0.0.1')
    sock.on('data', (d: Buffer) => {
      got += d.byteLength
    })
    sock.on('error', reject)
    sock.on('end', () => (got === bytes ? resolve((performance.now() - t0) / 1000) : reject(new Error(`raw tcp got ${got} of ${bytes} bytes`))))
  })
}

const SEAL_KEY_HEX = randomBytes(32).toString('hex')
const SEAL_KEY = createSecretKey(Buffer.from(SEAL_KEY_HEX, 'hex'))

/**
 * Seconds to receive and open `bytes` sent by the child's sealed server (p2p-child.ts): reads straight
 * into one reused buffer (`onread`), opens each message where it lies; only a message cut by the read
 * boundary is moved to the front. Every message is authenticated (final() throws on a bad tag).
 */
function sealedTcp(port: number, bytes: number, key: KeyObject): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const buf = Buffer.allocUnsafe(4 * MiB)
    const nonce = Buffer.alloc(12)
    let have = 0
    let got = 0
    let n = 0
    const onread = (nread: number): boolean => {
      have += nread
      let p = 0
      while (have - p >= 2) {
        const len = buf.readUInt16BE(p)
        if (have - p - 2 < len) break
        nonce.writeUInt32LE(n++, 4)
        const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
        d.setAuthTag(buf.subarray(p + len - 14, p + 2 + len))
        got += d.update(buf.subarray(p + 2, p + len - 14)).byteLength
        d.final()
        p += 2 + len
      }
      if (p > 0) {
        buf.copy(buf, 0, p, have)
        have -= p
      }
      return true
    }
    const sock = connect({ port, host: '127.0.0.1', onread: { buffer: () => buf.subarray(have), callback: onread } })
    sock.on('error', reject)
    sock.on('end', () => (got === bytes ? resolve((performance.now() - t0) / 1000) : reject(new Error(`sealed tcp opened ${got} of ${bytes} bytes`))))
  })
}

/** Single-core seal rate of 64 KiB messages (Noise's message size), key imported once, for 300 ms. */
function aeadThroughput(): number {
  const [key, nonce, ad, msg] = [createSecretKey(randomBytes(32)), randomBytes(12), randomBytes(32), randomBytes(65519)]
  let n = 0
  const t0 = performance.now()
  while (performance.now() - t0 < 300) {
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
    c.setAAD(ad, { plaintextLength: msg.byteLength })
    c.update(msg)
    c.final()
    c.getAuthTag()
    n += msg.byteLength
  }
  return n / ((performance.now() - t0) / 1000) / MB
}

async function spawnChild(cfg: object, flags: string[]): Promise<{ proc: ChildProcess; info: { addrs: string[]; peerId: string; tcpPort: number; sealedPort: number } }> {
  const script = fileURLToPath(new URL('./p2p-child.ts', import.meta.url))
  const nodeArgs = [...flags, ...(process.env.BENCH_P2P_CHILD_ARGS?.split(' ').filter(Boolean) ?? [])]
  const proc = spawn(process.execPath, [...nodeArgs, script, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] })
  // The ready line is the child's first JSON line; anything else (e.g. --trace-gc output) goes to stderr.
  const line = await new Promise<string>((resolve, reject) => {
    let ready = false
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      if (!ready && l.startsWith('{')) resolve(l)
      else process.stderr.write(`${l}\n`)
      ready ||= l.startsWith('{')
    })
    proc.once('exit', (code) => reject(new Error(`bench child exited with ${code}`)))
  })
  return { proc, info: JSON.parse(line) }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await p2pThroughputBench()
  process.exit(0)
}
