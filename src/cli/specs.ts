/**
 * Every subcommand of `snapswarm`: its flags (with defaults), its examples, and where its code is.
 * Implementations are imported only when their command runs.
 */
import type { CommandSpec, FlagSpec } from './command.ts'
import { toArgv } from './command.ts'

const ID = '3f1c9a52-7d1e-4b8e-9a0c-5e2f6d7a8b90'
const PARENT = '0b7e4c2a-1f3d-4e5a-8c6b-9d0e1f2a3b4c'

const STORAGE: readonly FlagSpec[] = [
  { flags: '--storage <url>', description: 'object storage: file:///absolute/path, gs://bucket[/prefix] or s3://bucket[/prefix] (S3 endpoint, region and credentials from the AWS environment)', default: 'storage from --config or SNAPSWARM_STORAGE' },
  { flags: '--gcs-endpoint <url>', description: 'GCS endpoint (an emulator)', default: 'STORAGE_EMULATOR_HOST, else Google Cloud Storage' },
  { flags: '--config <file>', description: 'JSON config file (docs/CONFIG.md)', default: 'SNAPSWARM_CONFIG, else none' },
]
const PROGRESS: FlagSpec = { flags: '--progress', description: 'draw progress on stderr even when it is not a terminal', default: 'only on a terminal' }
const BUILD_FILES: readonly FlagSpec[] = [
  { flags: '--memfile <file>', description: 'the memory snapshot file' },
  { flags: '--rootfs <file>', description: 'the root filesystem file' },
  { flags: '--snapfile <file>', description: 'the VM state file (a blob, stored whole)' },
  { flags: '--metadata <file>', description: 'the metadata JSON (a blob, stored whole)' },
  { flags: '--dirty <ranges>', description: 'with --parent: byte ranges that differ from the parent, e.g. 0-2097152,8388608-10485760 (memfile=RANGES with both files)', multiple: true },
]

const pack: CommandSpec = {
  name: 'pack',
  summary: 'frame a local file into a single-layer build directory',
  args: ['<input>'],
  flags: [
    { flags: '--out <dir>', description: 'output directory (required)' },
    { flags: '--codec <codec>', description: 'zstd, lz4 or none', default: 'zstd' },
    { flags: '--level <n>', description: 'compression level (zstd 1-19)', default: '3 for zstd' },
    { flags: '--frame-size <bytes>', description: 'uncompressed bytes per frame (KiB/MiB suffixes accepted)', default: '2MiB' },
    { flags: '--block-size <bytes>', description: 'block size of the header', default: '2MiB for memfile, 4096 for rootfs' },
    { flags: '--build-id <uuid>', description: 'build id', default: 'a random UUID' },
    { flags: '--kind <kind>', description: 'memfile or rootfs', default: 'memfile' },
    { flags: '--workers <n>', description: 'compression threads', default: 'the number of CPUs, at least 2' },
  ],
  examples: ['snapswarm pack vm/memfile --out build/', 'snapswarm pack rootfs.ext4 --kind rootfs --codec lz4 --out build/'],
  run: async (input) => (await import('./pack-cmd.ts')).packCommand(input),
}

const unpack: CommandSpec = {
  name: 'unpack',
  summary: 'reconstruct the virtual file of a packed build directory',
  args: ['<dir>'],
  flags: [
    { flags: '--out <file>', description: 'the file to write (required; must not exist)' },
    { flags: '--kind <kind>', description: 'memfile or rootfs', default: 'memfile' },
    { flags: '--workers <n>', description: 'decompression threads', default: '2' },
  ],
  examples: ['snapswarm unpack build/ --kind memfile --out memfile.restored'],
  run: async (input) => (await import('./pack-cmd.ts')).unpackCommand(input),
}

const inspect: CommandSpec = {
  name: 'inspect',
  summary: 'show a header file, or a stored build with --storage [--verify]',
  args: ['<target>'],
  flags: [
    { flags: '--json', description: 'one JSON object on stdout' },
    ...STORAGE,
    { flags: '--verify', description: 'with --storage: read every stored byte and check codec checksums, chunk digests and SHA-256' },
    { flags: '--allow-unverifiable', description: 'with --verify: accept a legacy raw layer that nothing can be checked against' },
    PROGRESS,
  ],
  examples: ['snapswarm inspect build/memfile.header', `snapswarm inspect --storage gs://my-bucket ${ID} --verify`],
  notes: '<target> is a header file, or a build id when --storage is given.',
  run: async (input) =>
    input.values.storage !== undefined
      ? (await import('./storage-cmds.ts')).inspectStoredCommand(input)
      : (await import('./inspect-cmd.ts')).inspectCommand(input),
}

const push: CommandSpec = {
  name: 'push',
  summary: 'upload one build (or a layered child) straight to storage',
  flags: [
    ...STORAGE,
    { flags: '--build-id <uuid>', description: 'the build id (required)' },
    { flags: '--parent <uuid>', description: 'parent build: only the --dirty ranges are stored, the rest maps to the parent' },
    ...BUILD_FILES,
    { flags: '--use-case <case>', description: 'build or pause (selects the compression settings)', default: 'build' },
    { flags: '--codec <codec>', description: 'zstd, lz4 or none', default: 'the config, else zstd' },
    { flags: '--level <n>', description: 'compression level', default: 'the config, else 3' },
    { flags: '--block-size <bytes>', description: 'block size of the headers', default: '2MiB for memfile, 4096 for rootfs' },
    { flags: '--header-version <4|5>', description: 'header version written when build entries are needed (docs/FORMAT.md)', default: 'format.headerVersion from the config, else 4' },
    PROGRESS,
  ],
  examples: [
    `snapswarm push --storage file:///srv/bucket --build-id ${ID} --memfile vm/memfile --rootfs vm/rootfs.ext4`,
    `snapswarm push --storage gs://my-bucket --build-id ${ID} --parent ${PARENT} --memfile vm/memfile --dirty 0-2097152`,
  ],
  run: async (input) => (await import('./storage-cmds.ts')).pushCommand(input),
}

const read: CommandSpec = {
  name: 'read',
  summary: 'write bytes of a stored build file to stdout, reading lazily',
  args: ['<build-id>', '<kind>'],
  flags: [
    ...STORAGE,
    { flags: '--offset <bytes>', description: 'first byte', default: '0' },
    { flags: '--length <bytes>', description: 'byte count', default: 'to the end of the file' },
    { flags: '--cache-dir <dir>', description: 'chunk cache directory, kept', default: 'a temporary directory, removed at exit' },
  ],
  examples: [`snapswarm read --storage gs://my-bucket ${ID} memfile --offset 4096 --length 4096 | xxd | head`],
  notes: '<kind> is memfile or rootfs. Closing stdout early (| head -c 16) ends the command quietly with status 0.',
  run: async (input) => (await import('./read-cmd.ts')).readCommand(input),
}

const node: CommandSpec = {
  name: 'node',
  summary: 'run a cluster node: serve builds to peers, read lazily, pause and upload',
  flags: [
    ...STORAGE,
    { flags: '--data-dir <dir>', description: 'node state and caches (required, or dataDir in the config)' },
    { flags: '--listen <multiaddr>', description: 'libp2p listen address', default: '/ip4/127.0.0.1/tcp/0', multiple: true },
    { flags: '--api <host:port>', description: 'HTTP API address; a non-loopback one needs --api-token-file', default: '127.0.0.1:0' },
    { flags: '--api-token-file <file>', description: 'bearer token every API route except the probes requires', default: 'none (loopback only)' },
    { flags: '--bootstrap <multiaddr>', description: 'a peer to connect to at start', multiple: true },
    { flags: '--cluster-key <file>', description: 'cluster key (snapswarm keygen); peers without it are refused', default: 'none' },
    { flags: '--allow-peer <peer-id>', description: 'admit only these peer ids', multiple: true },
    { flags: '--upload-rate <bytes>', description: 'cap on pause uploads, bytes per second (0 = unlimited)', default: '0' },
    { flags: '--shared-cache <dir>', description: 'shared frame cache directory (an NFS mount)', default: 'none' },
    { flags: '--log-level <level>', description: 'fatal, error, warn, info, debug, trace or silent', default: 'info' },
    { flags: '--pending-codec <codec>', description: 'codec of frames served while pending: upload, none, lz4 or zstd', default: 'upload' },
  ],
  examples: [
    'snapswarm node --storage file:///srv/bucket --data-dir /var/lib/snapswarm --cluster-key cluster.key',
    'snapswarm node --config node.json --bootstrap /ip4/10.0.0.2/tcp/4001/p2p/12D3KooW...',
  ],
  notes: 'Prints {"event":"ready","peerId","addrs","api","nbd"} on stdout once listening (nbd: the NBD server\'s unix:/tcp: addresses); SIGINT/SIGTERM stop it.',
  run: async (input) => (await import('./node-cmd.ts')).nodeCommand(input),
}

const pause: CommandSpec = {
  name: 'pause',
  summary: 'pause a build on a node (its API), announce it pending, upload it',
  flags: [
    { flags: '--api <url>', description: "the node's API URL, e.g. http://127.0.0.1:8080 (required)" },
    { flags: '--api-token-file <file>', description: "the node's API token", default: 'SNAPSWARM_API_TOKEN, else none' },
    { flags: '--build-id <uuid>', description: 'the build id (required)' },
    { flags: '--parent <uuid>', description: 'parent build (layered child)' },
    { flags: '--use-case <case>', description: 'pause or build', default: 'pause' },
    ...BUILD_FILES,
    { flags: '--overlay <name>', description: "an attached NBD overlay: its written blocks are the child's file, its build the parent" },
    { flags: '--wait', description: 'wait until the upload finished (exit 0) or failed (ERR_UPLOAD_FAILED)' },
    PROGRESS,
  ],
  examples: [
    `snapswarm pause --api http://127.0.0.1:8080 --api-token-file api.token --build-id ${ID} --memfile /vm/memfile --wait`,
    `snapswarm pause --api http://127.0.0.1:8080 --build-id ${ID} --overlay vm1 --wait`,
  ],
  run: async (input) => (await import('./node-cmd.ts')).pauseCommand(input),
}

const keygen: CommandSpec = {
  name: 'keygen',
  summary: 'write a new cluster key file (one per cluster, copied to every node)',
  args: ['<file>'],
  flags: [],
  examples: ['snapswarm keygen cluster.key'],
  run: async (input) => (await import('./keygen-cmd.ts')).keygenCommand(input),
}

const demo: CommandSpec = {
  name: 'demo',
  summary: 'run a local 3-node cluster: pause, resume while pending, switch over, verify',
  flags: [
    { flags: '--size-mib <n>', description: 'size of the generated memfile in MiB', default: '256' },
    { flags: '--keep', description: 'keep the temporary directory' },
    { flags: '--verbose', description: 'show the nodes’ logs' },
  ],
  examples: ['snapswarm demo', 'snapswarm demo --size-mib 64 --verbose'],
  run: async (input) => (await import('./demo.ts')).demoCommand(toArgv(input.values)),
}

/** In the order `snapswarm --help` lists them. */
const trace: CommandSpec = {
  name: 'trace',
  summary: "show a stored build's access trace (the frames a resume read first, in order)",
  args: ['<build-id>'],
  flags: [
    ...STORAGE,
    { flags: '--kind <kind>', description: 'memfile or rootfs', default: 'memfile' },
    { flags: '--json', description: 'one JSON object with every entry' },
  ],
  examples: [`snapswarm trace --storage gs://my-bucket ${ID}`, `snapswarm trace --storage file:///srv/bucket ${ID} --kind rootfs --json`],
  notes: 'A trace is {build-id}/{memfile|rootfs.ext4}.prefetch beside the build (README, Access traces and prefetch).',
  run: async (input) => (await import('./trace-cmd.ts')).traceCommand(input),
}

const nbd: CommandSpec = {
  name: 'nbd',
  summary: "list, start or stop a node's NBD exports (read-only, or read-write through an overlay)",
  args: ['<action>'],
  flags: [
    { flags: '--api <url>', description: "the node's API URL (required)" },
    { flags: '--api-token-file <file>', description: "the node's API token", default: 'SNAPSWARM_API_TOKEN, else none' },
    { flags: '--build <uuid>', description: 'start: the build' },
    { flags: '--file <kind>', description: 'start: memfile or rootfs' },
    { flags: '--overlay <name>', description: 'start: read-write through this overlay (kept under the data dir)', default: 'read-only' },
    { flags: '--name <export>', description: 'stop: the export name ({build}/{kind} or {build}/{kind}@{overlay})' },
    { flags: '--discard', description: "stop: also delete the export's overlay" },
  ],
  examples: [
    'snapswarm nbd list --api http://127.0.0.1:8080',
    `snapswarm nbd start --api http://127.0.0.1:8080 --build ${ID} --file rootfs --overlay vm1`,
    `snapswarm nbd stop --api http://127.0.0.1:8080 --name ${ID}/rootfs@vm1 --discard`,
  ],
  notes: '<action> is list, start or stop. Clients connect to the node\'s unix socket ({dataDir}/nbd.sock): nbd+unix:///{export}?socket=…',
  run: async (input) => (await import('./nbd-cmd.ts')).nbdCommand(input),
}

export const COMMAND_SPECS: readonly CommandSpec[] = [pack, unpack, inspect, push, read, node, pause, nbd, keygen, demo, trace]
