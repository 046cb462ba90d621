import { collectDefaultMetrics, Counter, Registry } from 'prom-client';

/**
 * The gateway's Prometheus registry (one per gateway instance, never the global default, so that
 * several gateways can live in one test process), and helpers every tier uses for its metrics.
 */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'pulsegate_' });
  return registry;
}

/** A counter whose value is read from `read()` when /metrics is scraped: nothing on the hot path. */
export function collectedCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
