/**
 * What the chunk cache keys a layer's cached bytes by: the build id AND the content the header
 * promises for that layer's data file. A header that promises other content for the same build id
 * (its source was re-framed, or another writer published it) gets another key, so it can never be
 * served from blocks cached for the old content.
 *
 * - A layer whose header carries its SHA-256 (V4): the key hashes the id, the file, the data file's
 *   size and that SHA-256. It does not depend on the frame geometry (the cache holds uncompressed
 *   bytes by offset), so a pending header and the final header of one build that promise the same
 *   content share the key, and the switchover keeps the cache; if they promise different content
 *   they do not.
 * - A layer without a known SHA-256 (a V3 header, or a V4 entry of zeros): nothing says what the
 *   content is, so the key hashes the whole header that maps it (its encoded bytes, which include
 *   the pending flag). A legacy build shares its cache only with readers of exactly the same header,
 *   and a pending header never shares with a final one it cannot be compared with: a refetch, never
 *   a wrong byte.
 */
import { createHash } from 'node:crypto'
import { type BuildInfo, encodeHeader, type Header } from '../format/header.ts'
import { type BuildId, type FileKind, storageName } from '../format/types.ts'

/** 128 bits as 32 lowercase hex digits: part of a directory name. */
export const CONTENT_KEY = /^[0-9a-f]{32}$/

const DOMAIN = 'snapswarm chunk cache v2'

export function layerContentKey(header: Header, layer: BuildId, kind: FileKind, info: BuildInfo | undefined): string {
  const h = createHash('sha256').update(`${DOMAIN}\0${layer}\0${storageName(kind)}\0`)
  if (info?.sha256.some((b) => b !== 0)) {
    h.update(`sha256\0${info.fileSize}\0`).update(info.sha256)
  } else {
    h.update('header\0').update(encodeHeader(header))
  }
  return h.digest('hex').slice(0, 32)
}
