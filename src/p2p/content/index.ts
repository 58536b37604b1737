/**
 * Content protocols (docs/ARCHITECTURE.md, "Wire protocols"): get a header, get the compressed bytes
 * of a batch of frames, get a blob. The serving side asks a `PeerContentProvider` (implemented by the
 * daemon over its local builds and caches); the fetching side is `PeerClient`. Answers carry a status
 * as data. The have protocol (have.ts) tells peers which frames of a build this node holds or fetches.
 */
export type * from './types.ts'
export { PeerClient, type PeerClientOptions } from './client.ts'
export { ContentServer, type ContentServerOptions } from './server.ts'
export { PROTOCOL_FRAMES_RELAY } from './types.ts'
export { type HaveBook, HaveService, type HaveOptions, PROTOCOL_HAVE } from './have.ts'
