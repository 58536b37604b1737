/**
 * Who may use the daemon's HTTP API. The API pauses files by path (publishing them to the bucket and
 * the cluster) and reads every build: anyone who reaches it owns the node. So it is either reachable
 * from this host only (a loopback address), or it needs a bearer token (RFC 6750), read from a file
 * named by `node.apiTokenFile` and compared in constant time. The token never goes to a log or an
 * error message.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { ConfigError } from '../config/load.ts'
import { isLoopbackHost, splitHostPort } from '../util/host-port.ts'
import { readRegularFile } from '../util/regular-file.ts'

/** RFC 6750 b64token characters. */
const TOKEN_RE = /^[A-Za-z0-9._~+/=-]+$/
/** 32 characters of that alphabet: at least ~190 bits of entropy from a random generator. */
export const MIN_TOKEN_CHARS = 32
/** Far above any real token, far below Node's 16 KiB header limit (a longer one would fail every request with 431). */
export const MAX_TOKEN_CHARS = 4096
/** A token file holds one token and whitespace around it; a bigger file is refused unread. */
const MAX_TOKEN_FILE_BYTES = 64 * 1024

export { isLoopbackHost, splitHostPort }

/** Validate a token (trimmed); `where` names its source in the error, which never includes the token. */
export function checkApiToken(raw: string, where: string): string {
  const token = raw.trim()
  const expected = `a bearer token of ${MIN_TOKEN_CHARS} to ${MAX_TOKEN_CHARS} characters from [A-Za-z0-9._~+/=-]`
  if (token.length < MIN_TOKEN_CHARS || token.length > MAX_TOKEN_CHARS) {
    throw new ConfigError(`${where}: expected ${expected}, found ${token.length} characters`)
  }
  if (!TOKEN_RE.test(token)) throw new ConfigError(`${where}: expected ${expected}, found a character outside that set`)
  return token
}

/** Read and validate a token file; `setting` names the flag or key that pointed at it. */
export async function readApiToken(path: string, setting: string): Promise<string> {
  let text: string
  try {
    text = (await readRegularFile(path, MAX_TOKEN_FILE_BYTES, 'token file')).toString('utf8')
  } catch (err) {
    // The system's own words when there are some (ENOENT, EACCES), else why the file was refused.
    const cause = (err as Error).cause
    throw new ConfigError(`${setting} ${path}: cannot read the token file: ${(cause instanceof Error ? cause : (err as Error)).message}`)
  }
  return checkApiToken(text, `${setting} ${path}`)
}

/**
 * The API's token (undefined: none), or a ConfigError when the API would be reachable from other
 * hosts without one. Run before anything is opened or bound, so a refused start leaves nothing behind.
 */
export async function resolveApiToken(node: { readonly api: string; readonly apiTokenFile?: string }): Promise<string | undefined> {
  if (node.apiTokenFile) return readApiToken(node.apiTokenFile, 'node.apiTokenFile')
  const { host } = splitHostPort(node.api)
  if (!isLoopbackHost(host)) {
    throw new ConfigError(
      `node.api ${node.api} is not a loopback address (127.0.0.0/8, ::1, localhost) and node.apiTokenFile is not set: ` +
        'an API reachable from other hosts needs a bearer token (--api-token-file FILE)',
    )
  }
  return undefined
}

export type BearerVerdict = 'ok' | 'missing' | 'invalid'

/** Checks `Authorization: Bearer <token>` headers against one token, in constant time. */
export class BearerCheck {
  private readonly digest: Buffer

  constructor(token: string) {
    this.digest = sha256(token)
  }

  check(header: string | undefined): BearerVerdict {
    const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header)
    if (!m) return 'missing'
    // Both sides hashed to 32 bytes: timingSafeEqual needs equal lengths, and the time taken tells
    // nothing about the token's length or how much of it matched.
    return timingSafeEqual(sha256(m[1]), this.digest) ? 'ok' : 'invalid'
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}
