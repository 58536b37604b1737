/**
 * The final header of a build in object storage, read by every layer that needs one (upload for a
 * parent, the read path, the switchover, the CLI): bounded before it is read, decoded and checked.
 */
import { FormatError } from '../errors.ts'
import { decodeHeader, HEADER_LIMITS, type Header } from '../format/header.ts'
import { headerObjectName } from '../format/layout.ts'
import { type BuildId, type FileKind, storageName } from '../format/types.ts'
import type { ObjectStore } from './store.ts'

/** The final header of a stored build. A stored header with the pending flag is refused: it was never meant to be stored. */
export async function loadStoredHeader(store: ObjectStore, buildId: BuildId, kind: FileKind): Promise<Header> {
  const bytes = await store.get(headerObjectName(buildId, kind), { maxBytes: HEADER_LIMITS.maxHeaderBytes })
  const header = decodeHeader(bytes)
  if (header.incomplete) throw new FormatError(`stored header of ${buildId}/${storageName(kind)} has the pending flag set`)
  return header
}
