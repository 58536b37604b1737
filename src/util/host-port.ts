/**
 * Host and port strings as the configuration gives them (`node.api`, the NBD listen address), and
 * whether a host is reachable from this machine only. Shared by the HTTP API and the NBD server.
 */
import { BlockList, isIP } from 'node:net'

/** 127.0.0.0/8 and ::1 (IPv4-mapped forms such as ::ffff:127.0.0.1 included). */
const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

/** `HOST:PORT` or `[IPV6]:PORT` (the form `node.api` takes) → host without brackets, port. */
export function splitHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':')
  const host = hostPort.slice(0, i)
  return { host: host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host, port: Number(hostPort.slice(i + 1)) }
}

/**
 * Whether a configured host is reachable from this machine only. Decided from the string alone,
 * before anything listens: `localhost` and literal loopback addresses; anything else (0.0.0.0, ::,
 * an interface address, a host name, `127.1`) counts as exposed.
 */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true
  const family = isIP(host)
  return family !== 0 && LOOPBACK.check(host, family === 6 ? 'ipv6' : 'ipv4')
}
