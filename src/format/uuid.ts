/**
 * Build ids: 16 raw bytes on the wire and in headers, the canonical lowercase string everywhere else.
 * Conversions are table-driven: headers hold one UUID per mapping, so this is hot.
 */
import { randomUUID } from 'node:crypto'
import { InvalidArgumentError } from '../errors.ts'
import type { BuildId } from './types.ts'

const CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const ANY_CASE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))
/** Byte positions after which the canonical form has a dash. */
const DASH_AFTER = new Set([3, 5, 7, 9])

/** True for a canonical (lowercase, dashed) UUID string. */
export function isBuildId(s: unknown): s is BuildId {
  return typeof s === 'string' && CANONICAL.test(s)
}

/** Any-case dashed UUID → canonical lowercase form; InvalidArgumentError otherwise. */
export function parseBuildId(s: string): BuildId {
  if (typeof s !== 'string' || !ANY_CASE.test(s)) {
    throw new InvalidArgumentError(`expected a build id (UUID like 0f8e6a3c-...), found ${JSON.stringify(s)}`)
  }
  return s.toLowerCase()
}

/** Canonical string → 16 raw bytes. */
export function uuidToBytes(id: BuildId): Uint8Array {
  const hex = parseBuildId(id).replaceAll('-', '')
  const out = new Uint8Array(16)
  for (let i = 0; i < 16; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

/** 16 raw bytes → canonical lowercase string. */
export function uuidFromBytes(b: Uint8Array): BuildId {
  if (b.byteLength !== 16) {
    throw new InvalidArgumentError(`expected 16 UUID bytes, found ${b.byteLength}`)
  }
  let s = ''
  for (let i = 0; i < 16; i++) {
    s += HEX[b[i]]
    if (DASH_AFTER.has(i)) s += '-'
  }
  return s
}

export function randomBuildId(): BuildId {
  return randomUUID()
}

/** Order of the raw 16 bytes; for canonical lowercase strings this is plain string order. */
export function compareBuildIds(a: BuildId, b: BuildId): number {
  return a < b ? -1 : a > b ? 1 : 0
}
