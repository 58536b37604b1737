#!/usr/bin/env node
// Entry point for `npx snapswarm` / `npm link`: Node >= 24 runs the TypeScript sources directly.
import module from 'node:module'

const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  // The code and status of src/cli/exit-codes.ts (this file cannot import TypeScript on an old Node).
  process.stderr.write(`snapswarm: ERR_NODE_VERSION: needs Node >= 24, found ${process.versions.node}; use node_modules/.bin/node or npm scripts\n`)
  process.exit(6)
}
// The compile cache keeps repeated runs from paying TypeScript stripping again (133 → 57 ms startup).
module.enableCompileCache?.()
await import('../src/cli/main.ts')
