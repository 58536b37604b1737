/**
 * One structured logger (pino, JSON lines on stderr); components take a child via `logger.child`.
 * Library code receives a Logger through its constructor and never writes to the console.
 */
import { pino, type Logger as PinoLogger } from 'pino'

export type Logger = PinoLogger

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export function createLogger(level: LogLevel = 'info', name = 'snapswarm'): Logger {
  // stderr keeps stdout free for command output (`read` writes file bytes there, `node` its ready line).
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }))
}

/** A logger that drops everything: the default for library objects built without one (tests, tools). */
export const silentLogger: Logger = pino({ level: 'silent' })
