/** Load and validate configuration: JSON file ← SNAPSWARM_* environment ← command-line flags. */
import type { z } from 'zod'
import { SnapswarmError } from '../errors.ts'
import { FILE_KINDS } from '../format/types.ts'
import { USE_CASES, resolveCompression } from './compression.ts'
import { storageEmulatorHost } from './env.ts'
import { type Config, configSchema } from './schema.ts'
import { readRegularFile } from '../util/regular-file.ts'

/** A config file is a few KiB; anything near this is not one. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024

export class ConfigError extends SnapswarmError {
  constructor(message: string) {
    super('ERR_CONFIG', message)
  }
}

export interface ConfigSources {
  readonly file?: string
  readonly env?: NodeJS.ProcessEnv
  /** Flag overrides of compression.default. */
  readonly codec?: string
  readonly level?: string
  /** `--header-version`: 4 or 5. */
  readonly headerVersion?: string
  /** Any other overrides, already shaped like the config. */
  readonly overrides?: Record<string, unknown>
}

/** Environment variables and the config key each sets. */
const ENV_KEYS: Record<string, string[]> = {
  SNAPSWARM_STORAGE: ['storage'],
  SNAPSWARM_DATA_DIR: ['dataDir'],
  SNAPSWARM_LOG_LEVEL: ['logLevel'],
  SNAPSWARM_CODEC: ['compression', 'default', 'codec'],
  SNAPSWARM_LEVEL: ['compression', 'default', 'level'],
}

export async function loadConfig(src: ConfigSources = {}): Promise<Config> {
  const env = src.env ?? process.env
  const path = src.file ?? env.SNAPSWARM_CONFIG
  let raw: Record<string, unknown> = {}
  if (path) {
    let text: string
    try {
      // A regular file of bounded size: `--config /dev/zero` (or a FIFO) is refused, not read forever.
      text = (await readRegularFile(path, MAX_CONFIG_BYTES, 'config file')).toString('utf8')
    } catch (err) {
      throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`)
    }
    try {
      raw = JSON.parse(text)
    } catch (err) {
      throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`)
    }
  }
  for (const [name, keyPath] of Object.entries(ENV_KEYS)) {
    const v = env[name]
    if (v === undefined || v === '') continue
    setPath(raw, keyPath, keyPath.at(-1) === 'level' ? Number(v) : v)
  }
  const emulator = storageEmulatorHost(env)
  if (emulator !== undefined) setPath(raw, ['gcsEndpoint'], /^https?:/.test(emulator) ? emulator : `http://${emulator}`)
  if (src.codec !== undefined) setPath(raw, ['compression', 'default', 'codec'], src.codec)
  if (src.level !== undefined) setPath(raw, ['compression', 'default', 'level'], Number(src.level))
  if (src.headerVersion !== undefined) setPath(raw, ['format', 'headerVersion'], Number(src.headerVersion))
  for (const [k, v] of Object.entries(src.overrides ?? {})) if (v !== undefined) setPath(raw, k.split('.'), v)
  return validateConfig(raw, path ?? 'configuration')
}

export function validateConfig(raw: unknown, where = 'configuration'): Config {
  const r = configSchema.safeParse(raw)
  if (!r.success) throw new ConfigError(`${where}: ${describe(r.error)}`)
  // Resolve every file type × use case now, so a bad combination fails at start, not in the background
  // after a pause was accepted. Checked against the smallest block size (4 KiB: memfiles without huge
  // pages); the file's real block size is checked again when it is framed.
  for (const kind of FILE_KINDS) {
    for (const useCase of USE_CASES) {
      try {
        resolveCompression(r.data.compression, kind, useCase, 4096)
      } catch (err) {
        throw new ConfigError(`${where}: ${(err as Error).message}`)
      }
    }
  }
  return r.data
}

function describe(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const at = i.path.join('.')
      if (i.code === 'unrecognized_keys') return `unknown key ${i.keys.map((k) => (at ? `${at}.${k}` : k)).join(', ')}`
      return `${at || '(root)'}: ${i.message}`
    })
    .join('; ')
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj
  for (const key of path.slice(0, -1)) {
    if (typeof cur[key] !== 'object' || cur[key] === null) cur[key] = {}
    cur = cur[key] as Record<string, unknown>
  }
  cur[path.at(-1)!] = value
}
