/**
 * docs/CONFIG.md against the schema (src/config/schema.ts): every key the schema accepts is
 * documented, every documented key exists, and every documented default is the schema's.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { COMPRESSION_DEFAULTS } from '../src/config/compression.ts'
import { loadConfig, validateConfig } from '../src/config/load.ts'
import { configSchema } from '../src/config/schema.ts'

interface DocRow {
  readonly key: string
  readonly defaultText: string
}

/** The rows of the "Settings" table: the key (first column) and the default column as written. */
async function settingsRows(): Promise<DocRow[]> {
  const doc = await readFile(new URL('../docs/CONFIG.md', import.meta.url), 'utf8')
  const start = doc.indexOf('## Settings')
  assert.ok(start >= 0, 'docs/CONFIG.md has a "## Settings" section')
  const end = doc.indexOf('\n## ', start + 1)
  const rows: DocRow[] = []
  for (const line of doc.slice(start, end < 0 ? undefined : end).split('\n')) {
    const m = /^\| `([^`]+)` \| ([^|]*) \|/.exec(line)
    if (m) rows.push({ key: m[1], defaultText: m[2].trim() })
  }
  assert.ok(rows.length > 20, `expected the settings table, found ${rows.length} rows`)
  return rows
}

/** A zod schema with its optional/default/nullable wrappers taken off. */
function unwrap(schema: unknown): { type: string; shape?: Record<string, unknown> } {
  let s = schema as { _zod: { def: { type: string; innerType?: unknown } }; shape?: Record<string, unknown> }
  while (['optional', 'default', 'nullable', 'prefault'].includes(s._zod.def.type)) s = s._zod.def.innerType as typeof s
  return { type: s._zod.def.type, shape: s._zod.def.type === 'object' ? s.shape : undefined }
}

/** Every leaf key the schema accepts, dotted (`node.listen`, `compression.memfile.pause.level`). */
function schemaLeaves(schema: unknown, prefix = ''): string[] {
  const { shape } = unwrap(schema)
  if (!shape) return [prefix]
  return Object.entries(shape).flatMap(([k, v]) => schemaLeaves(v, prefix ? `${prefix}.${k}` : k))
}

/** A documented key as a pattern: `{a,b}` is either, a trailing `*` any rest of the key. */
function keyPattern(docKey: string): RegExp {
  const body = docKey
    .split(/(\{[^}]+\}|\*)/)
    .map((part) => {
      if (part === '*') return '.+'
      if (part.startsWith('{')) return `(?:${part.slice(1, -1).split(',').map(escapeRegExp).join('|')})`
      return escapeRegExp(part)
    })
    .join('')
  return new RegExp(`^${body}$`)
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** The value at a dotted path of an object. */
function at(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj)
}

/** The documented default: the first `code` span of the default column, as JSON when it parses. */
function documentedDefault(text: string): unknown {
  const m = /`([^`]*)`/.exec(text)
  if (!m) return undefined
  try {
    return JSON.parse(m[1])
  } catch {
    return m[1]
  }
}

test('docs/CONFIG.md documents every key the config schema accepts, and no key the schema refuses', async () => {
  const rows = await settingsRows()
  const leaves = schemaLeaves(configSchema)
  const patterns = rows.map((r) => ({ key: r.key, re: keyPattern(r.key) }))
  const undocumented = leaves.filter((leaf) => !patterns.some((p) => p.re.test(leaf)))
  assert.deepEqual(undocumented, [], `schema keys missing from docs/CONFIG.md: ${undocumented.join(', ')}`)
  const stale = patterns.filter((p) => !leaves.some((leaf) => p.re.test(leaf))).map((p) => p.key)
  assert.deepEqual(stale, [], `documented keys the schema does not accept: ${stale.join(', ')}`)
  const seen = new Set<string>()
  for (const r of rows) {
    assert.ok(!seen.has(r.key), `${r.key} is documented once`)
    seen.add(r.key)
  }
})

test('every default docs/CONFIG.md gives is the one the schema applies to an empty config', async () => {
  const defaults = validateConfig({})
  let compared = 0
  for (const r of await settingsRows()) {
    if (r.key.startsWith('compression.')) continue // resolved per file, checked below
    const applied = at(defaults, r.key)
    if (applied === undefined) continue // no default: optional, documented in words ("none", "required")
    assert.deepEqual(documentedDefault(r.defaultText), applied, `${r.key}: docs/CONFIG.md says ${r.defaultText}, the schema's default is ${JSON.stringify(applied)}`)
    compared++
  }
  assert.ok(compared > 30, `expected most settings to have a default, compared ${compared}`)
})

test('regression: docs/CONFIG.md gave compression.default.partSize as 52428800 (50 MiB) while the default is 12 MiB; every compression default matches the code', async () => {
  const rows = await settingsRows()
  for (const [name, value] of Object.entries(COMPRESSION_DEFAULTS)) {
    const row = rows.find((r) => r.key === `compression.default.${name}`)
    assert.ok(row, `compression.default.${name} is documented`)
    assert.deepEqual(documentedDefault(row.defaultText), value, `compression.default.${name}: docs/CONFIG.md says ${row.defaultText}, the code's default is ${JSON.stringify(value)}`)
  }
})

/** A value to set through each documented environment variable, and what the config then holds. */
const ENV_SAMPLES: Record<string, { set: string; expect: unknown }> = {
  storage: { set: 'file:///srv/bucket', expect: 'file:///srv/bucket' },
  gcsEndpoint: { set: '127.0.0.1:4443', expect: 'http://127.0.0.1:4443' },
  dataDir: { set: '/srv/node', expect: '/srv/node' },
  logLevel: { set: 'debug', expect: 'debug' },
  'compression.default.codec': { set: 'lz4', expect: 'lz4' },
  'compression.default.level': { set: '7', expect: 7 },
}

test('each environment variable docs/CONFIG.md lists sets the key it names', async () => {
  const doc = await readFile(new URL('../docs/CONFIG.md', import.meta.url), 'utf8')
  const start = doc.indexOf('## Environment')
  const section = doc.slice(start, doc.indexOf('\n## ', start + 1))
  let checked = 0
  for (const line of section.split('\n')) {
    const m = /^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \| `([a-zA-Z.]+)`(?:, `\.([a-zA-Z]+)`)?[^|]*\|/.exec(line)
    if (!m) continue
    const vars = [...m[1].matchAll(/`([A-Z_]+)`/g)].map((v) => v[1])
    const keys = [m[2], ...(m[3] ? [`${m[2].slice(0, m[2].lastIndexOf('.'))}.${m[3]}`] : [])]
    assert.equal(vars.length, keys.length, `${line}: one key per variable`)
    for (const [i, name] of vars.entries()) {
      const sample = ENV_SAMPLES[keys[i]]
      assert.ok(sample, `${name} sets ${keys[i]}: give this test a sample value for it`)
      const cfg = await loadConfig({ env: { [name]: sample.set } })
      assert.deepEqual(at(cfg, keys[i]), sample.expect, `${name}=${sample.set} sets ${keys[i]}`)
      checked++
    }
  }
  assert.equal(checked, Object.keys(ENV_SAMPLES).length, 'every environment variable that sets a key was checked')
})
