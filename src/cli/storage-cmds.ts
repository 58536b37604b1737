
import { type FileKind, FILE_KINDS, storageName } from '../format/types.ts'
import { MAX_BLOB_BYTES } from '../p2p/constants.ts'
import { openStore } from '../storage/url.ts'
import { openRegularFile } from '../util/regular-file.ts'
import { loadConfig } from '../config/load.ts'
import { headerObjectName, loadStoredHeader } from '../read/open.ts'
import { type ByteRange, type UploadProgress, parseRanges, uploadBuild } from '../upload/build-upload.ts'
import { type Options, UsageError, buildIdFlag, choiceFlag, intFlag, parse, requiredString } from './args.ts'
import { headerSummary, headerToJson, verifyStoredKind } from './inspect-cmd.ts'
import { ProgressBar, formatBytes } from './progress.ts'

const STORAGE_FLAGS: Options = { storage: { type: 'string' }, 'gcs-endpoint': { type: 'string' }, config: { type: 'string' } }

/** `--storage` / `--gcs-endpoint`, else `storage` / `gcsEndpoint` from the config file or environment. */
async function storeFrom(values: Record<string, unknown>) {
  const config = await loadConfig({ file: values.config as string | undefined })
  const url = (values.storage as string | undefined) ?? config.storage
  if (!url) return openStore(requiredString(values, 'storage'))
  return openStore(url, { gcsEndpoint: (values['gcs-endpoint'] as string | undefined) ?? config.gcsEndpoint })
}

export async function pushCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      ...STORAGE_FLAGS, 'build-id': { type: 'string' }, parent: { type: 'string' }, memfile: { type: 'string' },
      rootfs: { type: 'string' }, snapfile: { type: 'string' }, metadata: { type: 'string' }, dirty: { type: 'string', multiple: true },
      'use-case': { type: 'string' }, codec: { type: 'string' }, level: { type: 'string' }, 'block-size': { type: 'string' },
    },
    0,
  )
  const buildId = buildIdFlag(values, 'build-id')
  if (!buildId) throw new UsageError('--build-id is required')
  const parent = buildIdFlag(values, 'parent')
  const config = await loadConfig({ file: values.config as string | undefined, codec: values.codec as string | undefined, level: values.level as string | undefined })
  const dirty = parseDirtyFlags(values.dirty as string[] | undefined, values)
  if (!parent && Object.keys(dirty).length > 0) throw new UsageError('--dirty needs --parent (without a parent each file is a whole single-layer build)')
  const files = { memfile: values.memfile as string, rootfs: values.rootfs as string, snapfile: values.snapfile as string, metadata: values.metadata as string }
  await checkInputFiles(files)
  const store = await storeFrom(values)
  const bars = new Map<FileKind, ProgressBar>()
  const started = performance.now()
  try {
    const headers = await uploadBuild({
      store,
      buildId,
      parent,
      files,
      dirty,
      useCase: choiceFlag(values, 'use-case', ['build', 'pause'] as const, 'build'),
      compression: config.compression,
      blockSize: values['block-size'] ? { memfile: intFlag(values, 'block-size', 0), rootfs: intFlag(values, 'block-size', 0) } : undefined,
      onProgress: (p: UploadProgress) => {
        let bar = bars.get(p.kind)
        if (!bar) {
          bar = new ProgressBar(`push ${p.kind}`, p.total)
          bars.set(p.kind, bar)
        }
        bar.update(p.read, `stored ${formatBytes(p.compressed)} uploaded ${formatBytes(p.uploaded)}`)
      },
    })
    for (const bar of bars.values()) bar.done()
    const secs = (performance.now() - started) / 1000
    for (const [kind, h] of headers) {
      const own = h.builds.get(buildId)
      const stored = own ? own.frames.compressedSize : h.size
      process.stdout.write(`pushed ${buildId}/${storageName(kind)}: ${formatBytes(own?.fileSize ?? h.size)} → ${formatBytes(stored)} (V${h.version}, generation ${h.generation})\n`)
    }
    process.stdout.write(`done in ${secs.toFixed(2)} s\n`)
    return 0
  } finally {
    await store.close()
  }
}

/**
 * Every file push will read is a regular file (a FIFO or a device would block or never end) and a
 * blob is within the size peers and the node accept; checked before anything is uploaded.
 */
async function checkInputFiles(files: Record<'memfile' | 'rootfs' | 'snapfile' | 'metadata', string | undefined>): Promise<void> {
  for (const [name, path] of Object.entries(files)) {
    if (!path) continue
    const blob = name === 'snapfile' || name === 'metadata'
    const f = await openRegularFile(path, { what: `--${name}`, maxBytes: blob ? MAX_BLOB_BYTES : undefined })
    await f.handle.close()
  }
}

/** `--dirty 0-2097152,...` applies to the one data file given; `--dirty memfile=...` names it. */
function parseDirtyFlags(flags: string[] | undefined, values: Record<string, unknown>): Partial<Record<FileKind, ByteRange[]>> {
  const out: Partial<Record<FileKind, ByteRange[]>> = {}
  for (const flag of flags ?? []) {
    const m = /^(memfile|rootfs)=(.*)$/.exec(flag)
    let kind: FileKind
    if (m) kind = m[1] as FileKind
    else {
      const given = FILE_KINDS.filter((k) => values[k])
      if (given.length !== 1) throw new UsageError('with both --memfile and --rootfs, name the file: --dirty memfile=RANGES --dirty rootfs=RANGES')
      kind = given[0]
    }
    out[kind] = parseRanges(m ? m[2] : flag)
  }
  return out
}

export async function readCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { ...STORAGE_FLAGS, offset: { type: 'string' }, length: { type: 'string' }, 'cache-dir': { type: 'string' } }, 2)
  const buildId = buildIdFlag({ id: positionals[0] }, 'id')!
  const kind = choiceFlag({ kind: positionals[1] }, 'kind', ['memfile', 'rootfs'] as const, 'memfile')
  const store = await storeFrom(values)
  try {
    const { openStoredBuildFile } = await import('../read/open.ts')
    const file = await openStoredBuildFile({ store, buildId, kind, cacheDir: values['cache-dir'] as string | undefined })
    try {
      const offset = intFlag(values, 'offset', 0)
      const length = intFlag(values, 'length', Math.max(0, file.size - offset))
      if (offset + length > file.size) throw new UsageError(`range ${offset}+${length} is beyond the file's size ${file.size}`)
      const step = 8 * 1024 * 1024
      for (let pos = offset; pos < offset + length; pos += step) {
        const bytes = await file.read(pos, Math.min(step, offset + length - pos))
        if (!process.stdout.write(bytes)) await new Promise((r) => process.stdout.once('drain', r))
      }
    } finally {
      await file.close()
    }
    return 0
  } finally {
    await store.close()
  }
}

export async function inspectStoredCommand(argv: string[]): Promise<number> {
  const flags: Options = { ...STORAGE_FLAGS, json: { type: 'boolean' }, verify: { type: 'boolean' }, 'allow-unverifiable': { type: 'boolean' } }
  const { values, positionals } = parse(argv, flags, 1)
  const buildId = buildIdFlag({ id: positionals[0] }, 'id')!
  const store = await storeFrom(values)
  try {
    const out: Record<string, unknown> = { buildId }
    let failed = false
    let found = 0
    for (const kind of FILE_KINDS) {
      if (!(await store.exists(headerObjectName(buildId, kind)))) continue
      found++
      const header = await loadStoredHeader(store, buildId, kind)
      const entry: Record<string, unknown> = { header: headerToJson(header) }
      if (!values.json) process.stdout.write(`${storageName(kind)}: ${headerSummary(header)}`)
      if (values.verify) {
        const verified = await verifyStoredKind(store, kind, header, { json: values.json === true, allowUnverifiable: values['allow-unverifiable'] === true })
        entry.verify = verified.report
        failed ||= verified.failed
      }
      out[kind] = entry
    }
    if (found === 0) throw new UsageError(`no headers for build ${buildId} in ${store.url}`)
    if (values.json) process.stdout.write(`${JSON.stringify(out)}\n`)
    return failed ? 1 : 0
  } finally {
    await store.close()
  }
}
