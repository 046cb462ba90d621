/**
 * The pulsegate gateway as a system under test: startGateway() on a given data directory with
 * anonymous MQTT and HTTP on free loopback ports; prints {"bench":"ready","ports":{...}} once it
 * listens. SIGTERM shuts it down gracefully (so that --cpu-prof can write its profile).
 *
 *   tsx bench/gateway-server.ts --data-dir DIR [--log-level warn] [--probe-window-ms 50]
 *       [--checkpoint-ms 10000] [--group-commit-ms N] [--sparkplug] [--no-fast-publish] [--config FILE (its kinds and ingest.sources)]
 *
 * Latency probe support: the `bridge` kind gets --probe-window-ms tumbling windows (the load
 * uses `heart-rate`, which keeps the configured defaults), and every `bridge` window emission
 * is time-stamped on the monotonic clock as it is counted in pulsegate_windows_emitted_total.
 * The harness fetches the stamps over IPC ({cmd:'emits'}) and pairs them with the probe's
 * publishes. This wraps the counter's labels() in this process only; no gateway code changes.
 * Likewise {cmd:'last-render'} answers when /metrics was last rendered (monotonic ms).
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { Args } from './lib/args.js';
import { announceReady } from './lib/child.js';
import { monoMs } from './lib/stats.js';
import { loadConfig } from '../gateway/config/load-config.js';
import { applyRuntimeConfig, startGateway } from '../gateway/main.js';

const args = new Args(process.argv.slice(2));
const dataDir = args.str('data-dir', '');
if (dataDir === '') {
  process.stderr.write('gateway-server: --data-dir is required\n');
  process.exit(2);
}
const probeWindowMs = args.num('probe-window-ms', 50);

// --config FILE: kinds and ingest.sources from a config file (e.g. examples/real-sensors.yaml).
const fromFile = args.has('config') ? (parseYaml(readFileSync(args.str('config', ''), 'utf8')) as { kinds?: unknown; ingest?: { sources?: unknown } }) : {};

const config = loadConfig({
  env: {},
  overrides: {
    ...(fromFile.kinds === undefined ? {} : { kinds: fromFile.kinds }),
    ...(fromFile.ingest?.sources === undefined ? {} : { ingest: { sources: fromFile.ingest.sources } }),
    dataDir,
    logLevel: args.str('log-level', 'warn'),
    // --no-fast-publish: every publish through aedes' parser (mqtt.fastPublish false), for comparison.
    mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true, fastPublish: !args.has('no-fast-publish') },
    http: { port: 0, host: '127.0.0.1' },
    window: { sizesMs: { bridge: [probeWindowMs] } },
    // The default rule bridge-truck-surge watches 1 min windows, which the probe's bridge kind has
    // not: the same rule on the probe's window size, so the rules are evaluated as by default.
    alerts: { rules: [{ id: 'bridge-truck-surge', kind: 'threshold', severity: 'warning', sensorKind: 'bridge', window: probeWindowMs, aggregate: 'count', where: { vehicleClass: 'TRUCK' }, above: 25, clear: 15 }] },
    log: {
      checkpointIntervalMs: args.num('checkpoint-ms', 10_000),
      ...(args.has('group-commit-ms') ? { groupCommitIntervalMs: args.num('group-commit-ms', 2) } : {}),
    },
    // --sparkplug: Sparkplug B ingest on (bench/sparkplug-bench.ts).
    ...(args.has('sparkplug') ? { ingest: { sparkplug: { enabled: true } } } : {}),
  },
});

// As the CLI does (`pulsegate start`): the process is the gateway's.
applyRuntimeConfig(config);
const started = monoMs();
const gw = await startGateway(config);
const startMs = monoMs() - started;

const emits: number[] = [];
let probeHooked = false;
const counter = gw.registry.getSingleMetric('pulsegate_windows_emitted_total') as unknown as
  | { labels: (...a: unknown[]) => unknown }
  | undefined;
if (counter !== undefined && typeof counter.labels === 'function') {
  const labels = counter.labels.bind(counter);
  counter.labels = (...a: unknown[]) => {
    const first = a[0];
    const kind = typeof first === 'string' ? first : (first as { kind?: string } | undefined)?.kind;
    if (kind === 'bridge') emits.push(monoMs());
    return labels(...a);
  };
  probeHooked = true;
}

// When the gateway renders /metrics: under load a scrape can wait long in the event loop, so the
// harness divides counter deltas by the time between renderings, not between its requests.
let lastRenderAt: number | null = null;
const registry = gw.registry as unknown as { metrics: () => Promise<string> };
const render = registry.metrics.bind(gw.registry);
registry.metrics = () => {
  lastRenderAt = monoMs();
  return render();
};

process.on('message', (msg: unknown) => {
  const m = msg as { cmd?: string; id?: number };
  if (m.cmd === 'emits') process.send?.({ id: m.id, emits: emits.splice(0), probeHooked });
  else if (m.cmd === 'last-render') process.send?.({ id: m.id, at: lastRenderAt });
});

let closing = false;
const shutdown = (): void => {
  if (closing) return;
  closing = true;
  const force = setTimeout(() => process.exit(1), 8000);
  force.unref();
  gw.close().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`gateway-server: close failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.on('disconnect', shutdown);

announceReady({ ports: gw.ports, startMs: Math.round(startMs), probeHooked });
