/**
 * Where access traces live and how they are found:
 *
 * - A build in storage: `{buildId}/{file}.prefetch` beside it, written create-only, so the first
 *   complete trace wins and later ones are dropped (ObjectExistsError is the ordinary outcome).
 * - A pending build: nothing may be written under its prefix before its upload's claim settles it
 *   (src/upload/claim.ts refuses a prefix that already holds objects), so a trace recorded while the
 *   build is pending waits here until the cluster says the build is uploaded, then goes to storage.
 *   If this node is the build's origin it also serves the trace to peers over the blob protocol
 *   meanwhile (`held`); a reader of a pending build asks the build's origin for it.
 *
 * A trace that does not parse is ignored with a warning: it only ever makes reads slower, never wrong.
 */
import type { BuildId, FileKind } from '../format/types.ts'
import type { Logger } from '../obs/log.ts'
import { NotFoundError, ObjectExistsError, type ObjectStore } from '../storage/store.ts'
import { traceBlobName, traceKindOf, traceObjectName } from '../format/layout.ts'
import { type AccessTrace, decodeTrace, encodeTrace, MAX_TRACE_BYTES } from './trace.ts'

/** Traces of pending builds kept at most (held for peers or waiting for the upload); the oldest go first. */
export const MAX_HELD_TRACES = 256
/** A pending build's trace waits this long for the upload at most, then is dropped. */
export const HELD_TRACE_TTL_MS = 60 * 60_000

export interface TraceStoreDeps {
  readonly store: ObjectStore
  /** The cluster's view of a build's upload (the node's BuildStatusBoard). */
  readonly status: {
    get(id: BuildId): 'pending' | 'uploaded' | 'failed' | undefined
    watch(id: BuildId, listener: (state: 'pending' | 'uploaded' | 'failed') => void): () => void
  }
  /** A blob of a pending build from the peers that serve it (its origin); null when none has it. */
  readonly fromPeers?: (id: BuildId, name: string, signal: AbortSignal) => Promise<Uint8Array | null>
  readonly log: Logger
}

interface Held {
  readonly bytes: Uint8Array
  readonly stop: () => void
}

export class TraceStore {
  private readonly deps: TraceStoreDeps
  private readonly held = new Map<string, Held>()

  constructor(deps: TraceStoreDeps) {
    this.deps = deps
  }

  /** A trace held for a pending build, for the blob protocol (`memfile.prefetch`, `rootfs.ext4.prefetch`). */
  heldBlob(buildId: BuildId, name: string): Uint8Array | undefined {
    const kind = traceKindOf(name)
    return kind ? this.held.get(`${buildId}/${kind}`)?.bytes : undefined
  }

  /**
   * The trace to prefetch from for a file of `size` bytes (undefined: any size): held here, else the
   * origin's (pending), else storage's. Null when there is none or it is unusable (warned).
   */
  async find(buildId: BuildId, kind: FileKind, size: number | undefined, pending: boolean, signal: AbortSignal): Promise<AccessTrace | null> {
    const expect = { buildId, kind, size }
    const here = this.held.get(`${buildId}/${kind}`)
    if (here) return this.parse(here.bytes, expect, 'held')
    if (pending && this.deps.fromPeers) {
      const bytes = await this.deps.fromPeers(buildId, traceBlobName(kind), signal).catch((err: unknown) => {
        this.deps.log.debug({ err, buildId, kind }, 'asking peers for an access trace failed')
        return null
      })
      if (bytes) return this.parse(bytes, expect, 'origin')
    }
    const stored = await this.fromStorage(buildId, kind)
    return stored ? this.parse(stored, expect, 'storage') : null
  }

  /** Keep a finished recording: to storage now if the build is there, else once it is uploaded. */
  async save(trace: AccessTrace, inStorage: boolean): Promise<void> {
    const bytes = encodeTrace(trace)
    if (inStorage || this.deps.status.get(trace.buildId) === 'uploaded') return this.put(trace.buildId, trace.kind, bytes)
    this.hold(trace.buildId, trace.kind, bytes)
  }

  /** Stop waiting on every held trace (node stop); what was not written is lost. */
  close(): void {
    for (const h of this.held.values()) h.stop()
    this.held.clear()
  }

  private hold(buildId: BuildId, kind: FileKind, bytes: Uint8Array): void {
    const key = `${buildId}/${kind}`
    if (this.held.has(key)) return // the first complete trace wins here too
    while (this.held.size >= MAX_HELD_TRACES) this.drop(this.held.keys().next().value!)
    const timer = setTimeout(() => this.drop(key), HELD_TRACE_TTL_MS)
    timer.unref()
    const unwatch = this.deps.status.watch(buildId, (state) => {
      if (state === 'pending') return
      this.drop(key)
      if (state === 'uploaded') void this.put(buildId, kind, bytes)
    })
    const stop = (): void => {
      clearTimeout(timer)
      unwatch()
    }
    this.held.set(key, { bytes, stop })
    this.deps.log.info({ buildId, kind, bytes: bytes.byteLength }, 'holding the access trace of a pending build until its upload completes')
  }

  private drop(key: string): void {
    this.held.get(key)?.stop()
    this.held.delete(key)
  }

  private async put(buildId: BuildId, kind: FileKind, bytes: Uint8Array): Promise<void> {
    const name = traceObjectName(buildId, kind)
    try {
      await this.deps.store.put(name, bytes)
      this.deps.log.info({ buildId, kind, bytes: bytes.byteLength }, 'stored the access trace')
    } catch (err) {
      if (err instanceof ObjectExistsError) this.deps.log.debug({ buildId, kind }, 'an access trace is already stored; the first one wins')
      else this.deps.log.warn({ err, buildId, kind }, 'storing the access trace failed')
    }
  }

  private async fromStorage(buildId: BuildId, kind: FileKind): Promise<Uint8Array | null> {
    try {
      return await this.deps.store.get(traceObjectName(buildId, kind), { maxBytes: MAX_TRACE_BYTES })
    } catch (err) {
      if (!(err instanceof NotFoundError)) this.deps.log.warn({ err, buildId, kind }, 'access trace unreadable in storage; reading without prefetch')
      return null
    }
  }

  private parse(bytes: Uint8Array, expect: { buildId: BuildId; kind: FileKind; size?: number }, from: string): AccessTrace | null {
    try {
      return decodeTrace(bytes, expect)
    } catch (err) {
      this.deps.log.warn({ err, buildId: expect.buildId, kind: expect.kind, from }, 'ignoring a corrupt or truncated access trace')
      return null
    }
  }
}
