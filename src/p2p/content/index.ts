/**
 * Content protocols (docs/ARCHITECTURE.md, "Wire protocols"): get a header, get the compressed bytes
 * of a batch of frames, get a blob. The serving side asks a `PeerContentProvider` (implemented by the
 * daemon over its local builds and caches); the fetching side is `PeerClient`. Answers carry a status
 * as data.
 */
export type * from './types.ts'
export { PeerClient, type PeerClientOptions } from './client.ts'
export { ContentServer, type ContentServerOptions } from './server.ts'
