/**
 * The NBD exports of a node. An export is one build file: `{buildId}/{kind}` read-only, or
 * `{buildId}/{kind}@{overlay}` read-write through a copy-on-write overlay kept under
 * `{dataDir}/overlays/{overlay}`. Reads go through the node's read path (local cache, peers, shared
 * cache, storage; every frame verified), so a cold block comes lazily from wherever it is.
 */
import { join } from 'node:path'
import { InvalidArgumentError, SnapswarmError } from '../errors.ts'
import type { Header } from '../format/header.ts'
import { resolve as resolveMapping } from '../format/mapping.ts'
import { type BuildId, type FileKind, NIL_BUILD_ID } from '../format/types.ts'
import { isBuildId } from '../format/uuid.ts'
import type { Logger } from '../obs/log.ts'
import { type Counter, counter, type Gauge, gauge, type Histogram, histogram, type Registry } from '../obs/metrics.ts'
import type { FileHandleLike } from '../switchover/open-files.ts'
import { CLEAN, DATA, Overlay, OVERLAY_BLOCK } from './overlay.ts'
import { type Extent, STATE_HOLE, STATE_ZERO } from './protocol.ts'

export interface ExportSpec {
  readonly buildId: BuildId
  readonly kind: FileKind
  /** The overlay's (attach) name: the export is read-write through it. */
  readonly overlay?: string
}

export interface ExportInfo {
  readonly name: string
  readonly buildId: BuildId
  readonly kind: FileKind
  readonly size: number
  readonly readOnly: boolean
  readonly overlay?: string
  readonly overlayBytes: number
  readonly connections: number
  /** Opened because a client asked for it by name; stopped when its last client leaves. */
  readonly auto: boolean
}

/** An export name, overlay name or request that does not fit: the HTTP API answers 400 / 404. */
export class ExportError extends SnapswarmError {}

const OVERLAY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const EXPORT_NAME = /^([0-9a-fA-F-]{36})\/(memfile|rootfs)(?:@([A-Za-z0-9][A-Za-z0-9._-]{0,63}))?$/

export function exportName(spec: ExportSpec): string {
  return `${spec.buildId}/${spec.kind}${spec.overlay ? `@${spec.overlay}` : ''}`
}

/** Parse an export name, or undefined when it is not one this server could ever serve. */
export function parseExportName(name: string): ExportSpec | undefined {
  const m = EXPORT_NAME.exec(name)
  if (!m || !isBuildId(m[1].toLowerCase())) return undefined
  return { buildId: m[1].toLowerCase() as BuildId, kind: m[2] as FileKind, ...(m[3] ? { overlay: m[3] } : {}) }
}

export function checkOverlayName(name: unknown): string {
  if (typeof name !== 'string' || !OVERLAY_NAME.test(name)) {
    throw new ExportError('ERR_INVALID_ARGUMENT', `overlay: expected 1-64 characters of [A-Za-z0-9._-] starting with a letter or digit, found ${JSON.stringify(name)?.slice(0, 100)}`)
  }
  return name
}

interface ExportMetrics {
  readonly requests: Counter
  readonly bytes: Counter
  readonly seconds: Histogram
  readonly overlayBytes: Gauge
  readonly connections: Gauge
}

function exportMetrics(reg: Registry): ExportMetrics {
  return {
    requests: counter(reg, 'snapswarm_nbd_requests_total', 'NBD requests by export, command and result (ok or the NBD error name)', ['export', 'command', 'result']),
    bytes: counter(reg, 'snapswarm_nbd_bytes_total', 'Bytes read from and written to NBD exports', ['export', 'direction']),
    seconds: histogram(reg, 'snapswarm_nbd_request_seconds', 'NBD request latency, from the request read to its reply handed to the socket', ['export', 'command']),
    overlayBytes: gauge(reg, 'snapswarm_nbd_overlay_bytes', 'Bytes an export\'s overlay holds (written or zeroed 4 KiB blocks)', ['export']),
    connections: gauge(reg, 'snapswarm_nbd_connections', 'Open NBD connections per export', ['export']),
  }
}

export class NbdExport {
  readonly name: string
  readonly spec: ExportSpec
  readonly auto: boolean
  private readonly metrics: ExportMetrics
  private readonly handle: FileHandleLike
  readonly overlay: Overlay | undefined
  private readonly closers = new Set<() => void>()
  /** Label sets this export put on the shared metrics, removed when it stops (exports come and go). */
  private readonly children = new Map<string, { count: { inc(): void }; seconds: { observe(v: number): void } }>()
  private readonly bytesChildren = new Map<string, { inc(n: number): void }>()
  private stopped = false
  /** Handshakes and connections using this export now (ExportRegistry.resolve / released). */
  holds = 0

  constructor(name: string, spec: ExportSpec, handle: FileHandleLike, overlay: Overlay | undefined, auto: boolean, metrics: ExportMetrics) {
    this.name = name
    this.spec = spec
    this.handle = handle
    this.overlay = overlay
    this.auto = auto
    this.metrics = metrics
  }

  get size(): number {
    return this.handle.size
  }

  get readOnly(): boolean {
    return this.overlay === undefined
  }

  get connections(): number {
    return this.closers.size
  }

  get header(): Header {
    return this.handle.file.header
  }

  /** A connection to this export; `close` is called when the export stops. Returns the detach function. */
  attach(close: () => void): () => void {
    this.closers.add(close)
    this.metrics.connections.set({ export: this.name }, this.closers.size)
    return () => {
      this.closers.delete(close)
      if (!this.stopped) this.metrics.connections.set({ export: this.name }, this.closers.size)
    }
  }

  /** One request answered: its command, result (`ok` or the NBD error name) and latency. */
  recordRequest(command: string, result: string, seconds: number): void {
    if (this.stopped) return // a request that finished after the stop: its series are gone
    const key = `${command}\0${result}`
    let child = this.children.get(key)
    if (!child) {
      // Labelled children looked up once per series, not per request.
      child = { count: this.metrics.requests.labels({ export: this.name, command, result }), seconds: this.metrics.seconds.labels({ export: this.name, command }) }
      this.children.set(key, child)
    }
    child.count.inc()
    child.seconds.observe(seconds)
  }

  recordBytes(direction: 'read' | 'write', n: number): void {
    if (this.stopped) return
    let child = this.bytesChildren.get(direction)
    if (!child) {
      child = this.metrics.bytes.labels({ export: this.name, direction })
      this.bytesChildren.set(direction, child)
    }
    child.inc(n)
  }

  private forgetMetrics(): void {
    const m = this.metrics
    for (const key of this.children.keys()) {
      const [command, result] = key.split('\0')
      m.requests.remove({ export: this.name, command, result })
      m.seconds.remove({ export: this.name, command })
    }
    for (const direction of ['read', 'write']) m.bytes.remove({ export: this.name, direction })
    m.overlayBytes.remove({ export: this.name })
    m.connections.remove({ export: this.name })
  }

  closeConnections(): void {
    for (const c of [...this.closers]) c()
  }

  readonly baseRead = (dst: Buffer, offset: number, signal?: AbortSignal): Promise<void> => this.handle.readInto(dst, offset, signal)

  async read(dst: Buffer, offset: number, signal?: AbortSignal): Promise<void> {
    if (this.overlay) return this.overlay.readInto(dst, offset, (d, o) => this.baseRead(d, o, signal))
    return this.baseRead(dst, offset, signal)
  }

  async write(src: Buffer, offset: number): Promise<void> {
    await this.writable().write(src, offset, (d, o) => this.baseRead(d, o))
    this.updateOverlayGauge()
  }

  async zero(offset: number, length: number): Promise<void> {
    await this.writable().zero(offset, length, (d, o) => this.baseRead(d, o))
    this.updateOverlayGauge()
  }

  async flush(): Promise<void> {
    await this.overlay?.flush()
  }

  /**
   * base:allocation extents from `offset`: the build's nil ranges are holes that read as zeros;
   * overlay blocks are data (written) or zeros (zeroed / trimmed). At most `maxExtents`, adjacent
   * extents of one state merged; they may end before `offset + length`.
   */
  extents(offset: number, length: number, maxExtents: number): Extent[] {
    const out: Extent[] = []
    const end = Math.min(offset + length, this.size)
    for (let pos = offset; pos < end && out.length < maxExtents; ) {
      const { len, flags } = this.extentAt(pos, end - pos)
      const last = out[out.length - 1]
      if (last && last.flags === flags) out[out.length - 1] = { length: last.length + len, flags }
      else out.push({ length: len, flags })
      pos += len
    }
    return out
  }

  info(): ExportInfo {
    return {
      name: this.name,
      buildId: this.spec.buildId,
      kind: this.spec.kind,
      size: this.size,
      readOnly: this.readOnly,
      ...(this.spec.overlay ? { overlay: this.spec.overlay } : {}),
      overlayBytes: this.overlay?.dirtyBytes ?? 0,
      connections: this.connections,
      auto: this.auto,
    }
  }

  async close(): Promise<void> {
    this.stopped = true
    this.closeConnections()
    this.forgetMetrics()
    try {
      if (this.overlay) {
        await this.overlay.flush()
        await this.overlay.close()
      }
    } finally {
      await this.handle.close()
    }
  }

  private extentAt(pos: number, max: number): { len: number; flags: number } {
    const cap = Math.min(max, 0xffffffff - (0xffffffff % OVERLAY_BLOCK))
    if (this.overlay) {
      const s = this.overlay.stateAt(pos)
      const run = this.overlay.runLength(pos, cap)
      if (s !== CLEAN) return { len: run, flags: s === DATA ? 0 : STATE_ZERO }
      return this.buildExtent(pos, run)
    }
    return this.buildExtent(pos, cap)
  }

  private buildExtent(pos: number, max: number): { len: number; flags: number } {
    const r = resolveMapping(this.header, pos)
    return { len: Math.min(r.remaining, max), flags: r.buildId === NIL_BUILD_ID ? STATE_HOLE | STATE_ZERO : 0 }
  }

  private writable(): Overlay {
    if (!this.overlay) throw new InvalidArgumentError(`export ${this.name} is read-only`)
    return this.overlay
  }

  private updateOverlayGauge(): void {
    if (this.stopped) return
    this.metrics.overlayBytes.set({ export: this.name }, this.overlay?.dirtyBytes ?? 0)
  }
}

export interface ExportRegistryDeps {
  readonly openFile: (id: BuildId, kind: FileKind) => Promise<FileHandleLike>
  /** Where overlays live: `{dir}/{overlay}/data` and `.../map`. */
  readonly overlaysDir: string
  /** Open `{buildId}/{kind}` read-only when a client asks for it without it being started. */
  readonly autoExport: boolean
  readonly registry: Registry
  readonly log: Logger
}

export class ExportRegistry {
  private readonly deps: ExportRegistryDeps
  private readonly exports = new Map<string, Promise<NbdExport>>()
  private readonly metrics: ExportMetrics

  constructor(deps: ExportRegistryDeps) {
    this.deps = deps
    this.metrics = exportMetrics(deps.registry)
  }

  /** Start an export (idempotent: the same spec returns the running one). */
  start(spec: ExportSpec, auto = false): Promise<NbdExport> {
    if (spec.overlay !== undefined) checkOverlayName(spec.overlay)
    const name = exportName(spec)
    const running = this.exports.get(name)
    if (running) return running
    if (spec.overlay) {
      for (const [other] of this.exports) {
        if (parseExportName(other)?.overlay === spec.overlay) throw new ExportError('ERR_BUILD_EXISTS', `overlay ${spec.overlay} is already attached as ${other}; expected one export per overlay`)
      }
    }
    const opening = this.open(name, spec, auto)
    this.exports.set(name, opening)
    opening.catch(() => this.exports.delete(name))
    return opening
  }

  /**
   * The export a client names: a started one, or (auto-export) `{buildId}/{kind}` read-only. The
   * caller holds it until it calls `released` (an auto-started export stops at its last release).
   */
  async resolve(name: string): Promise<NbdExport | undefined> {
    const running = this.exports.get(name)
    const spec = parseExportName(name)
    let exp: NbdExport | undefined
    if (running) exp = await running.catch(() => undefined)
    else if (spec && !spec.overlay && this.deps.autoExport) {
      exp = await this.start(spec, true).catch((err) => {
        this.deps.log.info({ err, export: name }, 'an NBD client asked for a build file this node cannot open')
        return undefined
      })
    }
    if (exp) exp.holds++
    return exp
  }

  /** A holder let go: an auto-started export nobody holds any more is stopped. */
  released(exp: NbdExport): void {
    exp.holds--
    if (exp.auto && exp.holds === 0 && this.exports.has(exp.name)) {
      void this.stop(exp.name).catch((err) => this.deps.log.warn({ err, export: exp.name }, 'stopping an idle NBD export failed'))
    }
  }

  get(name: string): Promise<NbdExport> | undefined {
    return this.exports.get(name)
  }

  /** The started export whose overlay has this name. */
  async byOverlay(overlay: string): Promise<NbdExport | undefined> {
    for (const [name, exp] of this.exports) if (parseExportName(name)?.overlay === overlay) return exp
    return undefined
  }

  async list(): Promise<ExportInfo[]> {
    const settled = await Promise.allSettled(this.exports.values())
    return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.info()] : [])).sort((a, b) => a.name.localeCompare(b.name))
  }

  /** Stop an export: its connections are closed, its overlay flushed (and removed with `discard`). */
  async stop(name: string, discard = false): Promise<boolean> {
    const opening = this.exports.get(name)
    if (!opening) return false
    this.exports.delete(name)
    const exp = await opening.catch(() => undefined)
    if (!exp) return true
    await exp.close()
    if (discard && exp.overlay) await Overlay.discard(exp.overlay.dir)
    this.deps.log.info({ export: name, discard }, 'NBD export stopped')
    return true
  }

  async closeAll(): Promise<void> {
    const names = [...this.exports.keys()]
    await Promise.allSettled(names.map((n) => this.stop(n)))
  }

  private async open(name: string, spec: ExportSpec, auto: boolean): Promise<NbdExport> {
    const handle = await this.deps.openFile(spec.buildId, spec.kind)
    let overlay: Overlay | undefined
    try {
      if (spec.overlay) {
        overlay = await Overlay.open(join(this.deps.overlaysDir, spec.overlay), { buildId: spec.buildId, kind: spec.kind, size: handle.size })
      }
    } catch (err) {
      await handle.close()
      throw err
    }
    const exp = new NbdExport(name, spec, handle, overlay, auto, this.metrics)
    this.metrics.overlayBytes.set({ export: name }, overlay?.dirtyBytes ?? 0)
    this.deps.log.info({ export: name, size: handle.size, auto }, 'NBD export started')
    return exp
  }
}
