/**
 * What a header says about one layer it maps: the single decision used by reads, by `inspect
 * --verify` and when a stored layer's own header is asked, so they can never disagree.
 *
 * It follows e2b's loader (it fills in missing build entries after reading a stored header):
 *  - an entry in the builds section describes the layer;
 *  - a version 1-3 header has no builds section: every layer is uncompressed, size unknown;
 *  - a version 4/5 header without an entry for its *own* build is what e2b's uncompressed upload
 *    path writes on top of a compressed parent (it keeps the parent's version and writes no self
 *    entry): that layer is uncompressed at its plain object name, size unknown;
 *  - a version 4/5 header without an entry for an ancestor says nothing about it: the ancestor's own
 *    stored header must be asked (claiming "uncompressed" would read the wrong object for a
 *    compressed ancestor);
 *  - a pending (incomplete) header is never filled in: its own entry may simply not exist yet.
 */
import { FormatError } from '../errors.ts'
import type { BuildInfo, Header } from './header.ts'
import type { BuildId } from './types.ts'

export type LayerDescription =
  | { readonly kind: 'described'; readonly info: BuildInfo }
  | { readonly kind: 'raw' }
  | { readonly kind: 'ask-own-header' }

export function describeLayer(header: Header, buildId: BuildId): LayerDescription {
  const info = header.builds.get(buildId)
  if (info !== undefined) return { kind: 'described', info }
  if (header.version <= 3) return { kind: 'raw' }
  if (buildId === header.buildId && !header.incomplete) return { kind: 'raw' }
  return { kind: 'ask-own-header' }
}

/**
 * The layer's BuildInfo, or undefined for an uncompressed layer of unknown size. A layer the header
 * leaves to its own header is asked through `lookup`; none found is a FormatError naming both.
 */
export async function resolveLayerInfo(
  header: Header,
  buildId: BuildId,
  lookup: ((buildId: BuildId) => Promise<BuildInfo | undefined>) | undefined,
): Promise<BuildInfo | undefined> {
  const d = describeLayer(header, buildId)
  if (d.kind === 'described') return d.info
  if (d.kind === 'raw') return undefined
  const info = await lookup?.(buildId)
  if (info === undefined) {
    throw new FormatError(`V${header.version} header of ${header.buildId} has no build info for layer ${buildId}, and its own header has none either`)
  }
  return info
}
