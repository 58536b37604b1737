/**
 * Prometheus metrics. One prom-client Registry per process (or per in-process test node) is passed
 * down through constructors; components register their instruments on it with `snapswarm_` names.
 */
import { Registry, Counter, Histogram, Gauge } from 'prom-client'

export { Registry, Counter, Histogram, Gauge }

export function createRegistry(): Registry {
  return new Registry()
}

/** Get-or-create, so two components (or two readers in one process) can share an instrument by name. */
export function counter(reg: Registry, name: string, help: string, labelNames: string[] = []): Counter {
  return (reg.getSingleMetric(name) as Counter | undefined) ?? new Counter({ name, help, labelNames, registers: [reg] })
}

export function gauge(reg: Registry, name: string, help: string, labelNames: string[] = []): Gauge {
  return (reg.getSingleMetric(name) as Gauge | undefined) ?? new Gauge({ name, help, labelNames, registers: [reg] })
}

/** Latency buckets in seconds: 100 µs (cache hit) to 30 s (a stalled GCS read). */
export const LATENCY_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export function histogram(
  reg: Registry,
  name: string,
  help: string,
  labelNames: string[] = [],
  buckets: number[] = LATENCY_BUCKETS,
): Histogram {
  return (
    (reg.getSingleMetric(name) as Histogram | undefined) ??
    new Histogram({ name, help, labelNames, buckets, registers: [reg] })
  )
}
