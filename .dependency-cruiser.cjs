/**
 * The import rules of src/ (docs/ARCHITECTURE.md, "Layers"): each layer imports only itself and the
 * layers listed before it, and no module imports itself back through a cycle. `npm run lint` runs it.
 */
'use strict'

/** Bottom to top. A layer is a list of path patterns (regular expressions on paths from the repo root). */
const LAYERS = [
  { name: 'base', paths: ['^src/errors\\.ts$', '^src/util/', '^src/obs/'] },
  { name: 'format', paths: ['^src/format/'] },
  // Swarm availability and frame source selection: pure bookkeeping over frame tables, no I/O, so a
  // simulation drives the same code as the read path; everything that moves bytes sits above it.
  { name: 'swarm', paths: ['^src/swarm/'] },
  { name: 'config', paths: ['^src/config/'] },
  { name: 'storage', paths: ['^src/storage/'] },
  { name: 'framing', paths: ['^src/framing/'] },
  { name: 'upload', paths: ['^src/upload/'] },
  { name: 'read', paths: ['^src/read/(?!sources/)'] },
  { name: 'p2p', paths: ['^src/p2p/', '^protocols/'] },
  { name: 'read-sources', paths: ['^src/read/sources/'] },
  { name: 'prefetch', paths: ['^src/prefetch/'] },
  { name: 'origin', paths: ['^src/origin/'] },
  { name: 'cluster', paths: ['^src/cluster/'] },
  { name: 'switchover', paths: ['^src/switchover/'] },
  { name: 'nbd', paths: ['^src/nbd/'] },
  { name: 'api', paths: ['^src/api/'] },
  { name: 'node', paths: ['^src/node/'] },
  { name: 'cli', paths: ['^src/cli/'] },
]

/** One rule per layer: nothing in it may import a layer above it. */
const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer.name}`,
  comment: `${layer.name} imports only the layers below it (${LAYERS.slice(0, i)
    .map((l) => l.name)
    .join(', ') || 'none'}), never ${LAYERS.slice(i + 1)
    .map((l) => l.name)
    .join(', ')}`,
  severity: 'error',
  from: { path: layer.paths },
  to: { path: LAYERS.slice(i + 1).flatMap((l) => l.paths) },
}))

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-circular',
      comment: 'no cycle between or inside folders: a cycle hides which module depends on which',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-not-to-tests',
      comment: 'product code never imports tests or benchmarks',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'bench-not-to-tests',
      comment: 'benchmarks share code through bench/lib/ or src/, never by importing tests',
      severity: 'error',
      from: { path: '^bench/' },
      to: { path: '^test/' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'every relative import resolves to a file (packages are checked by the type check)',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true, path: '^\\.' },
    },
  ],
  options: {
    parser: 'swc',
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      extensions: ['.ts', '.js', '.d.ts'],
    },
  },
}
