#!/usr/bin/env node
// Entry point for `npm install -g` / `npx snapswarm`: Node >= 24 runs the TypeScript sources directly.
import '../src/cli/main.ts'
