/**
 * `snapswarm node` (the daemon, issue 5) and `snapswarm pause` (issue 6): the daemon's CLI contract.
 * `pause` sends the node's API token (--api-token-file or SNAPSWARM_API_TOKEN) when given one.
 */
import { resolve as resolvePath } from 'node:path'
import { loadConfig } from '../config/load.ts'
import { FILE_KINDS } from '../format/types.ts'
import { createLogger } from '../obs/log.ts'
import { parseRanges } from '../upload/build-upload.ts'
import { checkApiToken, readApiToken } from '../node/api-auth.ts'
import { SnapswarmNode } from '../node/daemon.ts'
import { UsageError, buildIdFlag, choiceFlag, intFlag, parse, requiredString } from './args.ts'

export async function nodeCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      storage: { type: 'string' }, 'data-dir': { type: 'string' }, listen: { type: 'string', multiple: true },
      api: { type: 'string' }, bootstrap: { type: 'string', multiple: true }, 'cluster-key': { type: 'string' },
      'allow-peer': { type: 'string', multiple: true }, config: { type: 'string' }, 'gcs-endpoint': { type: 'string' },
      'upload-rate': { type: 'string' }, 'shared-cache': { type: 'string' }, 'log-level': { type: 'string' },
      'pending-codec': { type: 'string' }, 'api-token-file': { type: 'string' },
    },
    0,
  )
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
  const logger = createLogger(config.logLevel)
  const node = await SnapswarmNode.start({
    config,
    dataDir: resolvePath(config.dataDir),
    logger,
    pendingCodec: choiceFlag(values, 'pending-codec', ['upload', 'none', 'lz4', 'zstd'] as const, 'upload'),
  })
  process.stdout.write(`${JSON.stringify({ event: 'ready', peerId: node.peerId, addrs: node.addrs(), api: node.apiUrl })}\n`)
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

export async function pauseCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      api: { type: 'string' }, 'build-id': { type: 'string' }, parent: { type: 'string' }, 'use-case': { type: 'string' },
      memfile: { type: 'string' }, rootfs: { type: 'string' }, snapfile: { type: 'string' }, metadata: { type: 'string' },
      dirty: { type: 'string', multiple: true }, wait: { type: 'boolean' }, 'api-token-file': { type: 'string' },
    },
    0,
  )
  const api = requiredString(values, 'api').replace(/\/$/, '')
  const auth = await apiAuthHeader(values['api-token-file'] as string | undefined)
  const id = buildIdFlag(values, 'build-id')
  if (!id) throw new UsageError('--build-id is required')
  const files: Record<string, string> = {}
  for (const f of ['memfile', 'rootfs', 'snapfile', 'metadata']) if (values[f]) files[f] = resolvePath(values[f] as string)
  const dirty: Record<string, [number, number][]> = {}
  for (const flag of (values.dirty as string[] | undefined) ?? []) {
    const m = /^(memfile|rootfs)=(.*)$/.exec(flag)
    const given = FILE_KINDS.filter((k) => files[k])
    const kind = m ? m[1] : given.length === 1 ? given[0] : null
    if (!kind) throw new UsageError('with both --memfile and --rootfs, name the file: --dirty memfile=RANGES')
    dirty[kind] = parseRanges(m ? m[2] : flag).map((r) => [r.start, r.end])
  }
  const body = { parent: buildIdFlag(values, 'parent') ?? null, useCase: choiceFlag(values, 'use-case', ['pause', 'build'] as const, 'pause'), files, dirty }
  const res = await fetch(`${api}/v1/builds/${id}`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify(body) })
  const answer = (await res.json()) as Record<string, unknown>
  if (res.status === 401) throw new UsageError(`pause refused (401): ${answer.message}; give the node's token with --api-token-file FILE or SNAPSWARM_API_TOKEN`)
  if (res.status !== 202) throw new UsageError(`pause refused (${res.status}): ${answer.message ?? JSON.stringify(answer)}`)
  process.stdout.write(`${JSON.stringify(answer)}\n`)
  if (!values.wait) return 0
  for (let misses = 0; ; ) {
    await new Promise((r) => setTimeout(r, 200))
    const res = await fetch(`${api}/v1/builds/${id}`, { headers: auth }).catch((err) => err as Error)
    if (!(res instanceof Error) && res.status === 401) throw new UsageError(`lost track of build ${id} on ${api}: HTTP 401 (the node's token changed?)`)
    if (res instanceof Error || res.status !== 200) {
      // The node went away or forgot the build: give up after ~10 s rather than wait forever.
      if (++misses > 50) throw new UsageError(`lost track of build ${id} on ${api}: ${res instanceof Error ? res.message : `HTTP ${res.status}`}`)
      continue
    }
    misses = 0
    const info = (await res.json()) as Record<string, unknown>
    if (info.state === 'uploaded' || info.state === 'failed') {
      process.stdout.write(`${JSON.stringify(info)}\n`)
      return info.state === 'uploaded' ? 0 : 1
    }
  }
}

/**
 * The Authorization header for a node's API: the token from --api-token-file, else from
 * SNAPSWARM_API_TOKEN (the token itself, for scripts that keep it in a secret store), else none
 * (a node on loopback without a token).
 */
async function apiAuthHeader(tokenFile: string | undefined): Promise<Record<string, string>> {
  const fromEnv = process.env.SNAPSWARM_API_TOKEN
  const token = tokenFile ? await readApiToken(tokenFile, '--api-token-file') : fromEnv ? checkApiToken(fromEnv, 'SNAPSWARM_API_TOKEN') : undefined
  return token ? { authorization: `Bearer ${token}` } : {}
}
