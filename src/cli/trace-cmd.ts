/**
 * `snapswarm trace --storage URL <build-id> [--kind memfile|rootfs] [--json]`: the access trace stored
 * beside a build (`{buildId}/{file}.prefetch`): the frames a first resume read, in order, with the time
 * since the file opened. A damaged trace is ERR_FORMAT naming what is wrong; none is ERR_NOT_FOUND.
 */
import { SnapswarmError } from '../errors.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import { traceObjectName } from '../format/layout.ts'
import { type AccessTrace, decodeTrace, MAX_TRACE_BYTES } from '../prefetch/trace.ts'
import { NotFoundError, type ObjectStore } from '../storage/store.ts'
import { buildIdArg, kindArg } from './args.ts'
import type { CommandInput } from './command.ts'
import { storeFrom } from './storage-cmds.ts'

/** Entries listed in the text form; --json has them all. */
const SHOWN = 64

export async function traceCommand({ values, positionals }: CommandInput): Promise<number> {
  const buildId = buildIdArg(positionals[0], '<build-id>')
  const kind = kindArg((values.kind as string | undefined) ?? 'memfile', '--kind')
  const store = await storeFrom(values, { readOnly: true })
  try {
    const trace = decodeTrace(await loadTrace(store, buildId, kind), { buildId, kind })
    process.stdout.write(values.json ? `${JSON.stringify(traceJson(trace))}\n` : traceText(trace, traceObjectName(buildId, kind)))
    return 0
  } finally {
    await store.close()
  }
}

async function loadTrace(store: ObjectStore, buildId: BuildId, kind: FileKind): Promise<Uint8Array> {
  try {
    return await store.get(traceObjectName(buildId, kind), { maxBytes: MAX_TRACE_BYTES })
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err
    throw new SnapswarmError('ERR_NOT_FOUND', `build ${buildId} has no access trace for ${kind} in ${store.url}: expected ${traceObjectName(buildId, kind)}, found none`)
  }
}

export function traceJson(t: AccessTrace): Record<string, unknown> {
  return { buildId: t.buildId, kind: t.kind, size: t.size, count: t.entries.length, entries: t.entries.map((e) => ({ offset: e.offset, ms: e.ms })) }
}

export function traceText(t: AccessTrace, name: string): string {
  const lines = [
    `trace ${name}`,
    `build ${t.buildId} ${t.kind}, file size ${t.size}`,
    `${t.entries.length} frames in first-read order${t.entries.length > SHOWN ? ` (first ${SHOWN} shown; --json for all)` : ''}`,
    '    #        offset        ms',
  ]
  for (const [i, e] of t.entries.slice(0, SHOWN).entries()) lines.push(`${String(i).padStart(5)} ${String(e.offset).padStart(13)} ${String(e.ms).padStart(9)}`)
  return `${lines.join('\n')}\n`
}
