/**
 * The NBD side of a node, as the daemon wires it: the export registry, the server on the unix socket
 * (and TCP if configured), the exports named in the config, the HTTP routes' handlers and pauses
 * from overlays.
 */
import { join } from 'node:path'
import type { Config } from '../config/schema.ts'
import { InvalidArgumentError, SnapswarmError } from '../errors.ts'
import type { BuildId, FileKind } from '../format/types.ts'
import { isBuildId } from '../format/uuid.ts'
import type { Logger } from '../obs/log.ts'
import type { Registry } from '../obs/metrics.ts'
import { isLoopbackHost, splitHostPort } from '../util/host-port.ts'
import type { FileHandleLike } from '../switchover/open-files.ts'
import { checkOverlayName, type ExportInfo, ExportRegistry, type ExportSpec } from './exports.ts'
import { namesOverlay, overlayPause, removeDiffs, removeStaleDiffs } from './pause-overlay.ts'
import { NbdServer } from './server.ts'

export interface NbdServiceDeps {
  readonly config: Config
  readonly dataDir: string
  readonly openFile: (id: BuildId, kind: FileKind) => Promise<FileHandleLike>
  readonly registry: Registry
  readonly log: Logger
}

export class NbdService {
  readonly exports: ExportRegistry
  private readonly server: NbdServer | undefined
  private readonly diffDir: string
  private readonly log: Logger

  private constructor(exports: ExportRegistry, server: NbdServer | undefined, diffDir: string, log: Logger) {
    this.exports = exports
    this.server = server
    this.diffDir = diffDir
    this.log = log
  }

  /** Check the settings (a non-loopback TCP address needs nbd.allowRemoteTcp) and build the service; `listen` starts it. */
  static create(deps: NbdServiceDeps): NbdService {
    const { config, dataDir, log } = deps
    const nbd = config.nbd
    const exports = new ExportRegistry({ openFile: deps.openFile, overlaysDir: join(dataDir, 'overlays'), autoExport: nbd.autoExport, registry: deps.registry, log })
    let server: NbdServer | undefined
    if (nbd.enabled) {
      const tcp = nbd.tcp ? splitHostPort(nbd.tcp) : undefined
      if (tcp && !isLoopbackHost(tcp.host) && !nbd.allowRemoteTcp) {
        throw new SnapswarmError('ERR_CONFIG', `nbd.tcp ${nbd.tcp} is not a loopback address and nbd.allowRemoteTcp is not set: NBD has no TLS here, so anyone who reaches it could read builds and write overlays`)
      }
      server = new NbdServer({
        socketPath: nbd.socket ?? join(dataDir, 'nbd.sock'),
        tcp,
        maxConnections: nbd.maxConnections,
        maxInFlight: nbd.maxInFlight,
        maxInFlightBytes: nbd.maxInFlightBytes,
        maxInFlightBytesTotal: nbd.maxInFlightBytesTotal,
        handshakeTimeoutMs: nbd.handshakeTimeoutMs,
        exports,
        registry: deps.registry,
        log,
      })
    }
    return new NbdService(exports, server, join(dataDir, 'overlay-diffs'), log)
  }

  /**
   * Listen, then start the configured exports (one that cannot open is logged, not fatal: its build
   * may come later). Diff copies a previous run left for pauses that are over are removed.
   */
  async listen(config: Config, pauseRunning: (id: BuildId) => boolean): Promise<void> {
    await removeStaleDiffs(this.diffDir, pauseRunning)
    await this.server?.listen()
    for (const e of config.nbd.exports) {
      const spec: ExportSpec = { buildId: e.build as BuildId, kind: e.file, ...(e.overlay ? { overlay: e.overlay } : {}) }
      this.exports.start(spec).catch((err) => this.log.error({ err, build: e.build, file: e.file }, 'starting a configured NBD export failed'))
    }
    if (this.server) this.log.info({ addresses: this.server.addresses }, 'NBD server listening')
  }

  get addresses(): string[] {
    return this.server?.addresses ?? []
  }

  async list(): Promise<{ addresses: string[]; exports: ExportInfo[] }> {
    return { addresses: this.addresses, exports: await this.exports.list() }
  }

  /** `POST /v1/exports` body `{"build": uuid, "file": "memfile"|"rootfs", "overlay"?: name}`. */
  async start(body: unknown): Promise<ExportInfo> {
    const exp = await this.exports.start(parseExportRequest(body))
    return exp.info()
  }

  async stop(name: string, discard: boolean): Promise<boolean> {
    return this.exports.stop(name, discard)
  }

  /**
   * A pause body naming overlays becomes one naming diff files (with the paths the pause may read
   * inside the data dir); any other body passes through. `run` is the ordinary pause.
   */
  async pause<T>(id: string, body: unknown, run: (body: unknown, trusted: ReadonlySet<string>) => Promise<T>): Promise<T> {
    if (!namesOverlay(body) || !isBuildId(id)) return run(body, new Set())
    const p = await overlayPause(id, body as Record<string, unknown>, this.exports, this.diffDir)
    try {
      return await run(p.body, p.trusted)
    } catch (err) {
      await p.discard()
      throw err
    }
  }

  /** A pause ended (uploaded or failed): its diff files are not needed any more. */
  buildFinished(id: BuildId): void {
    void removeDiffs(this.diffDir, id)
  }

  async close(): Promise<void> {
    await this.server?.close()
    await this.exports.closeAll()
  }
}

function parseExportRequest(body: unknown): ExportSpec {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InvalidArgumentError('export request: expected a JSON object')
  const b = body as Record<string, unknown>
  for (const k of Object.keys(b)) if (k !== 'build' && k !== 'file' && k !== 'overlay') throw new InvalidArgumentError(`unknown field '${k}' in export request`)
  if (!isBuildId(b.build)) throw new InvalidArgumentError(`build: expected a build id (lower-case UUID), found ${JSON.stringify(b.build)?.slice(0, 100)}`)
  if (b.file !== 'memfile' && b.file !== 'rootfs') throw new InvalidArgumentError(`file: expected memfile or rootfs, found ${JSON.stringify(b.file)?.slice(0, 100)}`)
  return { buildId: b.build, kind: b.file, ...(b.overlay !== undefined ? { overlay: checkOverlayName(b.overlay) } : {}) }
}
