/**
 * `snapswarm node` (the daemon) and `snapswarm pause`: the daemon's CLI contract.
 * `pause` sends the node's API token (--api-token-file or SNAPSWARM_API_TOKEN) when given one.
 */
import { resolve as resolvePath } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { ConfigError, loadConfig } from '../config/load.ts'
import { createLogger } from '../obs/log.ts'
import { checkApiToken, readApiToken } from '../api/auth.ts'
import { SnapswarmNode } from '../node/daemon.ts'
import { isErrorCode, SnapswarmError } from '../errors.ts'
import { UsageError, buildIdFlag, choiceFlag, intFlag, requiredString } from './args.ts'
import type { CommandInput } from './command.ts'
import { pseudoFsOf } from '../util/regular-file.ts'
import { progressWanted } from './progress.ts'
import { parseDirtyFlags } from './storage-cmds.ts'

export async function nodeCommand({ values }: CommandInput): Promise<number> {
  const config = await loadConfig({
    file: values.config as string | undefined,
    overrides: {
      storage: values.storage,
      gcsEndpoint: values['gcs-endpoint'],
      dataDir: values['data-dir'],
      logLevel: values['log-level'],
      'node.listen': values.listen,
      'node.api': values.api,
      'node.bootstrap': values.bootstrap,
      'node.clusterKeyFile': values['cluster-key'],
      'node.apiTokenFile': values['api-token-file'],
      'node.allowPeers': values['allow-peer'],
      'node.uploadRateBytesPerSec': values['upload-rate'] === undefined ? undefined : intFlag(values, 'upload-rate', 0),
      'cache.sharedDir': values['shared-cache'],
    },
  })
  if (!config.dataDir) throw new UsageError('--data-dir is required (or dataDir in the config file)')
  const pseudo = await pseudoFsOf(config.dataDir)
  if (pseudo) throw new ConfigError(`dataDir ${config.dataDir}: on the kernel's ${pseudo} filesystem, where nothing can be stored`)
  checkMultiaddrs(config.node.listen, 'node.listen (--listen)')
  checkMultiaddrs(config.node.bootstrap, 'node.bootstrap (--bootstrap)')
  const logger = createLogger(config.logLevel)
  const node = await SnapswarmNode.start({
    config,
    dataDir: resolvePath(config.dataDir),
    logger,
    pendingCodec: choiceFlag(values, 'pending-codec', ['upload', 'none', 'lz4', 'zstd'] as const, 'upload'),
  })
  process.stdout.write(`${JSON.stringify({ event: 'ready', peerId: node.peerId, addrs: node.addrs(), api: node.apiUrl, nbd: node.nbd.addresses })}\n`)
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      logger.info({ signal: sig }, 'shutting down')
      resolve()
    }
    process.once('SIGTERM', () => onSignal('SIGTERM'))
    process.once('SIGINT', () => onSignal('SIGINT'))
  })
  await node.stop()
  logger.flush()
  return 0
}

export async function pauseCommand({ values }: CommandInput): Promise<number> {
  const api = requiredString(values, 'api').replace(/\/$/, '')
  const auth = await apiAuthHeader(values['api-token-file'] as string | undefined)
  const id = buildIdFlag(values, 'build-id')
  if (!id) throw new UsageError('--build-id is required')
  const files: Record<string, string> = {}
  for (const f of ['memfile', 'rootfs', 'snapfile', 'metadata']) if (values[f]) files[f] = resolvePath(values[f] as string)
  const ranges = parseDirtyFlags(values.dirty as string[] | undefined, values)
  const dirty = Object.fromEntries(Object.entries(ranges).map(([kind, rs]) => [kind, (rs ?? []).map((r) => [r.start, r.end])]))
  // --overlay NAME: the file is an NBD overlay's written blocks, its parent the build it is attached to.
  const overlay = values.overlay ? { overlay: values.overlay as string } : {}
  const body = { parent: buildIdFlag(values, 'parent') ?? null, useCase: choiceFlag(values, 'use-case', ['pause', 'build'] as const, 'pause'), files, dirty, ...overlay }
  const url = `${api}/v1/builds/${id}`
  const res = await callApi(url, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify(body) })
  const answer = await answerOf(res, url)
  if (res.status !== 202) throw refusal(res.status, answer, 'pause')
  process.stdout.write(`${JSON.stringify(answer)}\n`)
  if (!values.wait) return 0
  const info = await waitForUpload(url, auth, progressWanted(values))
  process.stdout.write(`${JSON.stringify(info)}\n`)
  if (info.state === 'failed') throw new SnapswarmError('ERR_UPLOAD_FAILED', `the node reports the upload of build ${id} failed: ${info.error ?? 'no detail'}`)
  return 0
}

/**
 * Polls the build on its node until its upload ended (uploaded or failed); a node gone for ~10 s is an
 * error. `progress`: each state the build goes through (framing, pending, ...) is a line on stderr.
 */
async function waitForUpload(url: string, auth: Record<string, string>, progress: boolean): Promise<Record<string, unknown>> {
  const started = performance.now()
  let shown = ''
  for (let misses = 0; ; ) {
    await new Promise((r) => setTimeout(r, 200))
    const res = await callApi(url, { headers: auth }).catch((err: SnapswarmError) => err)
    if (!(res instanceof Error) && (res.status === 401 || res.status === 403)) throw refusal(res.status, await answerOf(res, url), 'lost track of the build')
    if (res instanceof Error || res.status !== 200) {
      // The node went away or forgot the build: give up after ~10 s rather than wait forever.
      if (++misses > 50) throw res instanceof Error ? res : refusal(res.status, await answerOf(res, url), 'lost track of the build')
      continue
    }
    misses = 0
    const info = await answerOf(res, url)
    if (progress && info.state !== shown) {
      shown = String(info.state)
      process.stderr.write(`pause ${info.id ?? ''}: ${shown} after ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
    }
    if (info.state === 'uploaded' || info.state === 'failed') return info
  }
}

/** fetch, with a connection that fails reported as ERR_UNREACHABLE naming the address. */
export async function callApi(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init)
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    const why = cause?.code ?? cause?.message ?? (err as Error).message
    throw new SnapswarmError('ERR_UNREACHABLE', `cannot reach the node's API at ${new URL(url).origin}: ${why}`, { cause: err })
  }
}

/** The JSON body of an API answer; a body that is not JSON is the node's (or a proxy's) fault. */
export async function answerOf(res: Response, url: string): Promise<Record<string, unknown>> {
  const text = await res.text()
  try {
    return JSON.parse(text) as Record<string, unknown>
  } catch {
    throw new SnapswarmError('ERR_REMOTE', `${url} answered HTTP ${res.status} with a body that is not JSON: ${JSON.stringify(text.slice(0, 120))}`)
  }
}

/**
 * A refusal from the node as an error with its own code (the node's `error` field: ERR_UNAUTHORIZED,
 * ERR_BUILD_EXISTS, ERR_FILE_NOT_FOUND...); a server-side failure (5xx) is ERR_REMOTE, naming the node's code.
 */
export function refusal(status: number, answer: Record<string, unknown>, what: string): SnapswarmError {
  const named = typeof answer.error === 'string' && /^ERR_[A-Z0-9_]+$/.test(answer.error) ? answer.error : undefined
  // A code this version does not know (a newer node's) is reported as the node's failure, naming it.
  const code = isErrorCode(named) ? named : undefined
  const message = String(answer.message ?? JSON.stringify(answer))
  if (status >= 500 || !code) return new SnapswarmError('ERR_REMOTE', `${what} failed on the node (HTTP ${status}${named ? ` ${named}` : ''}): ${message}`)
  const hint = status === 401 ? "; give the node's token with --api-token-file FILE or SNAPSWARM_API_TOKEN" : ''
  return new SnapswarmError(code, `${what} refused (HTTP ${status}): ${message}${hint}`)
}

/** Every address parses as a multiaddr: a typo is a config error at start, not a libp2p failure later (or never). */
function checkMultiaddrs(addrs: readonly string[], what: string): void {
  for (const a of addrs) {
    try {
      multiaddr(a)
    } catch (err) {
      throw new ConfigError(`${what}: expected a multiaddr such as /ip4/127.0.0.1/tcp/4001, found '${a}' (${(err as Error).message})`)
    }
  }
}

/**
 * The Authorization header for a node's API: the token from --api-token-file, else from
 * SNAPSWARM_API_TOKEN (the token itself, for scripts that keep it in a secret store), else none
 * (a node on loopback without a token).
 */
export async function apiAuthHeader(tokenFile: string | undefined): Promise<Record<string, string>> {
  const fromEnv = process.env.SNAPSWARM_API_TOKEN
  const token = tokenFile ? await readApiToken(tokenFile, '--api-token-file') : fromEnv ? checkApiToken(fromEnv, 'SNAPSWARM_API_TOKEN') : undefined
  return token ? { authorization: `Bearer ${token}` } : {}
}
