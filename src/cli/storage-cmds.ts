/**
 * The commands that talk to object storage directly: `push`, `inspect --storage` (with `--verify`)
 * and the shared `--storage` / `--gcs-endpoint` / `--config` handling (`read` is read-cmd.ts).
 */
import { SnapswarmError } from '../errors.ts'
import type { Header } from '../format/header.ts'
import { type BuildId, type FileKind, FILE_KINDS, storageName } from '../format/types.ts'
import { MAX_BLOB_BYTES } from '../p2p/constants.ts'
import { BucketNotFoundError, type ObjectStore } from '../storage/store.ts'
import { openStore } from '../storage/url.ts'
import { openRegularFile } from '../util/regular-file.ts'
import { loadConfig } from '../config/load.ts'
import { headerObjectName } from '../format/layout.ts'
import { loadStoredHeader } from '../storage/stored-header.ts'
import type { ByteRange } from '../format/frame-table.ts'
import { type UploadProgress, uploadBuild } from '../upload/build-upload.ts'
import { parseRanges } from '../upload/layer-header.ts'
import { UsageError, buildIdArg, buildIdFlag, choiceFlag, intFlag, requiredString } from './args.ts'
import type { CommandInput } from './command.ts'
import { exitStatusFor } from './exit-codes.ts'
import { headerSummary, headerToJson, verifyStoredKind } from './inspect-cmd.ts'
import { ProgressBar, countingStore, formatBytes, progressWanted } from './progress.ts'

/**
 * `--storage` / `--gcs-endpoint`, else `storage` / `gcsEndpoint` from the config file or environment.
 * `readOnly`: the command only reads, so a `file:` directory must exist already (nothing is created).
 */
export async function storeFrom(values: CommandInput['values'], opts: { readOnly?: boolean } = {}): Promise<ObjectStore> {
  const config = await loadConfig({ file: values.config as string | undefined })
  const url = (values.storage as string | undefined) ?? config.storage
  if (!url) return openStore(requiredString(values, 'storage'))
  return openStore(url, { gcsEndpoint: (values['gcs-endpoint'] as string | undefined) ?? config.gcsEndpoint, readOnly: opts.readOnly })
}

/**
 * The error for a build file whose header is not in storage: the whole build missing, or only this
 * kind (the other kind's header is there). Code ERR_NOT_FOUND either way.
 */
export async function missingBuildError(store: ObjectStore, buildId: BuildId, kind?: FileKind): Promise<SnapswarmError> {
  const others: FileKind[] = []
  for (const k of FILE_KINDS) if (k !== kind && (await store.exists(headerObjectName(buildId, k)))) others.push(k)
  if (kind && others.length > 0) return new SnapswarmError('ERR_NOT_FOUND', `build ${buildId} has no ${kind} in ${store.url} (it has: ${others.join(', ')})`)
  return new SnapswarmError('ERR_NOT_FOUND', `build ${buildId} is not in ${store.url}: expected ${kind ? headerObjectName(buildId, kind) : 'a memfile or rootfs header'}, found none`)
}

/**
 * `err`, or the missing bucket behind it: a store answers "not found" for every object of a bucket
 * that does not exist, which would otherwise blame a part, a claim or a header.
 */
export async function explainNotFound(store: ObjectStore, err: unknown): Promise<unknown> {
  if ((err as { code?: unknown })?.code !== 'ERR_NOT_FOUND' || !store.bucketExists) return err
  const exists = await store.bucketExists().catch(() => true)
  return exists ? err : new BucketNotFoundError(`bucket ${store.url.replace(/^([a-z0-9]+:\/\/[^/]+).*$/, '$1')}`, { cause: err })
}

export async function pushCommand({ values }: CommandInput): Promise<number> {
  const buildId = buildIdFlag(values, 'build-id')
  if (!buildId) throw new UsageError('--build-id is required')
  const parent = buildIdFlag(values, 'parent')
  const headerVersion = values['header-version'] === undefined ? undefined : choiceFlag(values, 'header-version', ['4', '5'] as const, '4')
  const config = await loadConfig({ file: values.config as string | undefined, codec: values.codec as string | undefined, level: values.level as string | undefined, headerVersion })
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
      headerVersion: config.format.headerVersion,
      blockSize: values['block-size'] ? { memfile: intFlag(values, 'block-size', 0), rootfs: intFlag(values, 'block-size', 0) } : undefined,
      onProgress: (p: UploadProgress) => {
        let bar = bars.get(p.kind)
        if (!bar) {
          bar = new ProgressBar(`push ${p.kind}`, p.total, progressWanted(values))
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
  } catch (err) {
    throw await explainNotFound(store, err)
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
export function parseDirtyFlags(flags: string[] | undefined, values: Record<string, unknown>): Partial<Record<FileKind, ByteRange[]>> {
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

export async function inspectStoredCommand({ values, positionals }: CommandInput): Promise<number> {
  const buildId = buildIdArg(positionals[0], '<target> (a build id with --storage)')
  if (values['allow-unverifiable'] && !values.verify) throw new UsageError('--allow-unverifiable applies to --verify only')
  const store = await storeFrom(values, { readOnly: true })
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
        const bar = new ProgressBar(`verify ${kind}`, storedBytes(header), progressWanted(values))
        const counted = countingStore(store, (n) => bar.update(n))
        const verified = await verifyStoredKind(counted, kind, header, { json: values.json === true, allowUnverifiable: values['allow-unverifiable'] === true }).finally(() => bar.done())
        entry.verify = verified.report
        failed ||= verified.failed
      }
      out[kind] = entry
    }
    if (found === 0) throw await missingBuildError(store, buildId)
    if (values.json) process.stdout.write(`${JSON.stringify(out)}\n`)
    return failed ? exitStatusFor('ERR_VERIFY_FAILED') : 0
  } catch (err) {
    throw await explainNotFound(store, err)
  } finally {
    await store.close()
  }
}

/** Bytes `--verify` reads: every layer's stored data (compressed size; a raw layer's file size). */
function storedBytes(header: Header): number {
  let total = 0
  for (const b of header.builds.values()) total += b.frames.codec === 'none' ? b.fileSize : b.frames.compressedSize
  return total
}
