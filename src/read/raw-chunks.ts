/**
 * The fetch units of a raw layer whose header carries chunk digests: exactly the digested chunks, each
 * with the SHA-256 its bytes must have, so the fetcher verifies a chunk before anything uses it. A
 * mapped byte no listed chunk covers is a FormatError (header validation already refuses that).
 */
import { FormatError } from '../errors.ts'
import type { RawDigests } from '../format/raw-digests.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import type { FramePlanner } from './chunk-file.ts'

export function digestPlanner(buildId: BuildId, kind: FileKind, fileSize: number, digests: RawDigests): FramePlanner {
  return (offset) => {
    const c = digests.chunkAt(offset, fileSize)
    if (c === undefined) throw new FormatError(`raw layer ${buildId}/${kind}: no chunk digest covers offset ${offset}`)
    return { buildId, kind, codec: 'none', startU: c.startU, sizeU: c.sizeU, startC: c.startU, sizeC: c.sizeU, digest: c.sha256 }
  }
}
