/**
 * `snapswarm read --storage URL <build-id> <kind>`: bytes of a stored build file on stdout, reading
 * only the frames needed. A reader that closes stdout early (`| head -c 16`) ends the command quietly,
 * and SIGINT/SIGTERM stop it; either way the temporary chunk cache is removed before it exits.
 */
import { headerObjectName } from '../format/layout.ts'
import { tuneGcForBulkTransfer } from '../p2p/index.ts'
import { openStoredBuildFile, type StoredBuildFile } from '../read/open.ts'
import { NotFoundError, type ObjectStore } from '../storage/store.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import { UsageError, buildIdArg, intFlag, kindArg } from './args.ts'
import type { CommandInput } from './command.ts'
import { InterruptedError, StdoutClosedError } from './exit-codes.ts'
import { explainNotFound, missingBuildError, storeFrom } from './storage-cmds.ts'

const STEP = 8 * 1024 * 1024

export async function readCommand({ values, positionals }: CommandInput): Promise<number> {
  const buildId = buildIdArg(positionals[0], '<build-id>')
  const kind = kindArg(positionals[1])
  const offset = intFlag(values, 'offset', 0)
  // A bulk read decodes a fresh frame buffer per frame: the node's GC setting for such transfers.
  tuneGcForBulkTransfer()
  const stop = onSignals()
  try {
    const store = await storeFrom(values, { readOnly: true })
    try {
      const file = await openFile(store, buildId, kind, values['cache-dir'] as string | undefined)
      try {
        stop.signal.throwIfAborted()
        const length = intFlag(values, 'length', Math.max(0, file.size - offset))
        if (offset + length > file.size) throw new UsageError(`--offset ${offset} --length ${length}: expected a range within the file's ${file.size} bytes`)
        // One buffer for every step: each is written out (awaited) before the next read fills it.
        const buf = Buffer.allocUnsafe(Math.min(STEP, length))
        for (let pos = offset; pos < offset + length; pos += STEP) {
          const bytes = buf.subarray(0, Math.min(STEP, offset + length - pos))
          await file.readInto(bytes, pos, stop.signal)
          await writeStdout(bytes, stop.signal)
        }
      } finally {
        await file.close()
      }
      return 0
    } finally {
      await store.close()
    }
  } catch (err) {
    throw stop.signal.aborted ? stop.signal.reason : err
  } finally {
    stop.dispose()
  }
}

async function openFile(store: ObjectStore, buildId: BuildId, kind: FileKind, cacheDir: string | undefined): Promise<StoredBuildFile> {
  try {
    return await openStoredBuildFile({ store, buildId, kind, cacheDir })
  } catch (err) {
    if (err instanceof NotFoundError && err.objectName.endsWith(headerObjectName(buildId, kind))) throw await explainNotFound(store, await missingBuildError(store, buildId, kind))
    throw await explainNotFound(store, err)
  }
}

/** SIGINT/SIGTERM abort the returned signal (with InterruptedError) instead of killing the process. */
function onSignals(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController()
  const onInt = () => ac.abort(new InterruptedError('SIGINT'))
  const onTerm = () => ac.abort(new InterruptedError('SIGTERM'))
  process.once('SIGINT', onInt)
  process.once('SIGTERM', onTerm)
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
    },
  }
}

/**
 * Resolves once stdout took `bytes`; a closed stdout (EPIPE) is StdoutClosedError. Interrupted while
 * a reader is not taking our output, the pending bytes are dropped (stdout destroyed) so that the
 * process can exit instead of waiting for that reader.
 */
function writeStdout(bytes: Uint8Array, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      process.stdout.destroy()
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    process.stdout.write(bytes, (err) => {
      signal.removeEventListener('abort', onAbort)
      if (!err) resolve()
      else reject(['EPIPE', 'ERR_STREAM_DESTROYED'].includes((err as NodeJS.ErrnoException).code ?? '') ? new StdoutClosedError() : err)
    })
  })
}
