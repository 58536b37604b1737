/**
 * One way for a test to get nodes: `testNodes()` makes a temp dir holding a file:// bucket (or uses
 * the storage URL given), optionally a cluster key, and the test's base config; `startTestNode(name)`
 * starts a node whose data dir is `{dir}/{name}` (the same name again: a restart on the same data),
 * in this process (a SnapswarmNode) or, with `process: true`, as a real `snapswarm node` process
 * (bench/lib/procs.ts). `close()` stops every node still running (kills the processes; an in-process
 * node gets a bounded wait) and removes the dir. Process nodes get the base config as a config file, with `--cluster-key` when there is one.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { validateConfig } from '../../src/config/load.ts'
import { SnapswarmNode } from '../../src/node/daemon.ts'
import { type Logger, silentLogger } from '../../src/obs/log.ts'
import { writeClusterKey } from '../../src/p2p/admission.ts'
import { type NodeProc, startNode } from '../../bench/lib/procs.ts'

/** A config section tree, as written in a config file. */
export type ConfigTree = { [key: string]: unknown }

/**
 * Timings for multi-node tests: announcements every 300 ms (kept 3 s), peer requests bounded at
 * 3 s (stall 1.5 s), the switchover's poll for the final header 3 s, and a pending build's grace
 * long enough never to expire during a test.
 */
export const CLUSTER_TIMINGS: ConfigTree = {
  peers: { announceIntervalMs: 300, announceTtlMs: 3000, requestTimeoutMs: 3000, stallTimeoutMs: 1500 },
  switchover: { finalHeaderPollMs: 3000 },
  node: { pendingGraceMs: 600_000 },
}

export interface TestNodesOptions {
  /** Temp dir name: `snapswarm-{prefix}-XXXXXX`. */
  readonly prefix: string
  /** The base config every node starts from (merged under each node's own `config`). */
  readonly config?: ConfigTree
  /** Write a cluster key and give it to every process node. */
  readonly clusterKey?: boolean
  /** Storage URL instead of `{dir}/bucket`. */
  readonly storage?: string
}

interface NodeOptions {
  /** Merged over the base config for this node (sections merged key by key, arrays replaced). */
  readonly config?: ConfigTree
  /** Data dir instead of `{dir}/{name}`. */
  readonly dataDir?: string
  /** Storage URL instead of the shared bucket. */
  readonly storage?: string
}

export interface InProcessNodeOptions extends NodeOptions {
  readonly process?: false
  readonly pendingCodec?: 'upload' | 'none' | 'lz4' | 'zstd'
  readonly logger?: Logger
}

export interface ProcessNodeOptions extends NodeOptions {
  readonly process: true
  /** More `snapswarm node` flags (after the ones the helper passes: a later flag wins). */
  readonly args?: readonly string[]
  readonly env?: NodeJS.ProcessEnv
}

export interface TestNodes {
  readonly dir: string
  /** `{dir}/bucket` (when no storage URL was given). */
  readonly bucket: string
  readonly storage: string
  /** The cluster key file, when asked for. */
  readonly key?: string
  /** The base config as a file (what process nodes are given). */
  readonly configFile: string
  startTestNode(name: string, opts?: InProcessNodeOptions): Promise<SnapswarmNode>
  startTestNode(name: string, opts: ProcessNodeOptions): Promise<NodeProc>
  /** Stop every node still running (processes: SIGKILL) and remove the dir. */
  close(): Promise<void>
}

export async function testNodes(opts: TestNodesOptions): Promise<TestNodes> {
  const dir = await mkdtemp(join(tmpdir(), `snapswarm-${opts.prefix}-`))
  const bucket = join(dir, 'bucket')
  const storage = opts.storage ?? pathToFileURL(bucket).href
  const base = opts.config ?? {}
  const key = opts.clusterKey ? join(dir, 'cluster.key') : undefined
  if (key) await writeClusterKey(key)
  const configFile = join(dir, 'config.json')
  await writeFile(configFile, JSON.stringify(base))
  const inProcess: SnapswarmNode[] = []
  const processes: NodeProc[] = []

  async function configFileFor(name: string, own: ConfigTree | undefined): Promise<string> {
    if (!own) return configFile
    const path = join(dir, `config-${name}.json`)
    await writeFile(path, JSON.stringify(mergeConfig(base, own)))
    return path
  }

  async function startTestNode(name: string, o: InProcessNodeOptions | ProcessNodeOptions = {}): Promise<SnapswarmNode | NodeProc> {
    const dataDir = o.dataDir ?? join(dir, name)
    if (o.process) {
      const keyArgs = key ? ['--cluster-key', key] : []
      const args = ['--storage', o.storage ?? storage, '--data-dir', dataDir, ...keyArgs, '--config', await configFileFor(name, o.config), ...(o.args ?? [])]
      const n = await startNode(args, o.env)
      processes.push(n)
      return n
    }
    const config = validateConfig(mergeConfig(mergeConfig(base, { storage: o.storage ?? storage }), o.config ?? {}))
    const n = await SnapswarmNode.start({ config, dataDir, logger: o.logger ?? silentLogger, pendingCodec: o.pendingCodec })
    inProcess.push(n)
    return n
  }

  return {
    dir,
    bucket,
    storage,
    key,
    configFile,
    startTestNode: startTestNode as TestNodes['startTestNode'],
    async close() {
      // The dir goes even when a node fails to stop: a wedged node gets a bounded wait, and rm
      // retries while its last writes land.
      await Promise.allSettled([...inProcess.map((n) => withinStopBound(n.stop())), ...processes.map((n) => n.kill())])
      await rm(dir, { recursive: true, force: true, maxRetries: 5 })
    },
  }
}

/** How long `close()` waits for an in-process node to stop before it removes the dir anyway. */
const STOP_BOUND_MS = 60_000

function withinStopBound(stopping: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`a node did not stop in ${STOP_BOUND_MS / 1000} s`)), STOP_BOUND_MS)
  })
  return Promise.race([stopping, bound]).finally(() => clearTimeout(timer))
}

/** `over` on top of `base`: plain objects merged key by key, anything else (arrays too) replaced. */
export function mergeConfig(base: ConfigTree, over: ConfigTree): ConfigTree {
  const out: ConfigTree = { ...base }
  for (const [k, v] of Object.entries(over)) {
    const b = out[k]
    out[k] = isTree(b) && isTree(v) ? mergeConfig(b, v) : v
  }
  return out
}

function isTree(v: unknown): v is ConfigTree {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
