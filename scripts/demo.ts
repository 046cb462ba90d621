/**
 * `npm run demo`: the gateway on the embedded store, with anonymous MQTT, plus a heart-rate and a
 * bridge simulator publishing to it, and the push proxy with its phone page, until Ctrl-C. Prints
 * where to look, then one live line.
 * PULSEGATE_* environment variables still apply (e.g. PULSEGATE_MQTT_PORT=0 for a free port).
 */
import { loadConfig } from '../gateway/config/load-config.js';
import { isGatewayError } from '../gateway/errors.js';
import { startGateway } from '../gateway/main.js';
import { startPushProxy } from '../gateway/push-proxy/push-proxy.js';
import { generateVapidKeyFile } from '../gateway/push-proxy/vapid-keys.js';
import { existsSync } from 'node:fs';
import { pino } from 'pino';
import { runSimulator, type SimulatorProgress } from '../simulators/index.js';
import { buildConsole } from './build-console.js';

async function main(): Promise<void> {
  const config = loadConfig({
    overrides: {
      dataDir: './data/demo',
      logLevel: 'warn',
      mqtt: { allowAnonymous: true, wsPort: 8083 },
      http: { allowAnonymous: true },
      sinks: { flushIntervalMs: 500 },
      pushProxy: { vapidSubject: 'mailto:demo@example.org' },
    },
  });
  buildConsole();
  const gw = await startGateway(config);
  const { mqtt, ws, http } = gw.ports;
  const base = `http://127.0.0.1:${http}`;
  // The push proxy, in this process for the demo (`pulsegate push-proxy` runs it alone).
  if (!existsSync(config.pushProxy.vapidKeyFile)) generateVapidKeyFile(config.pushProxy.vapidKeyFile);
  const proxy = await startPushProxy({ ...config.pushProxy, gatewayUrl: base }, { logger: pino({ level: 'warn', base: { service: 'pulsegate-push-proxy' } }) });
  process.stdout.write(
    [
      '',
      'pulsegate demo — embedded store, anonymous MQTT, 8 athletes at 5 Hz and 4 bridges',
      `  console      ${base}/   (devices, live charts, alerts, health, SQL)`,
      `  MQTT         mqtt://127.0.0.1:${mqtt}${ws === null ? '' : `   (WebSocket ws://127.0.0.1:${ws})`}`,
      `  metrics      ${base}/metrics`,
      `  windows      ${base}/v1/windows?kind=heart-rate&device=athlete-1&from=now-5m`,
      `               ${base}/v1/windows?kind=bridge&from=now-5m&size=1m`,
      `  readings     ${base}/v1/readings?kind=bridge&from=now-1m&limit=20`,
      `  SQL          curl -s ${base}/v1/query -H 'content-type: application/json' -d '{"sql":"SELECT device_id, count(*) FROM readings GROUP BY device_id"}'`,
      `  health       ${base}/healthz  ${base}/readyz`,
      `  streams      ${base}/v1/streams/alerts  ${base}/v1/streams/windows?kind=bridge  (SSE, anonymous in the demo)`,
      `  phone page   ${proxy.url}/app/   (push proxy: hand-offs ${proxy.url}/v1/handoffs, metrics ${proxy.url}/metrics)`,
      `  data         ${config.dataDir}  (inspect the log: npx tsx gateway/cli.ts log inspect ${config.log.dir})`,
      `  try          mosquitto_pub -p ${mqtt} -t sensors/heart-rate/me -m "{\\"seq\\":1,\\"ts\\":$(date +%s%3N),\\"bpm\\":72}"`,
      '  Ctrl-C stops everything.',
      '',
    ].join('\n') + '\n',
  );

  const abort = new AbortController();
  const progress: Record<string, SimulatorProgress | undefined> = {};
  const url = `mqtt://127.0.0.1:${mqtt}`;
  const sims = [
    runSimulator({ kind: 'heart-rate', devices: 8, url, qos: 1, signal: abort.signal, onProgress: (p) => (progress['hr'] = p), progressIntervalMs: 500 }),
    runSimulator({ kind: 'bridge', devices: 4, rate: 2, truckSurges: true, url, qos: 1, format: 'json', signal: abort.signal, onProgress: (p) => (progress['br'] = p), progressIntervalMs: 500 }),
  ];

  const value = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const metric = gw.registry.getSingleMetric(name);
    if (metric === undefined) return 0;
    const data = await metric.get();
    return data.values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((n, v) => n + v.value, 0);
  };
  const started = Date.now();
  const ticker = setInterval(() => {
    void (async () => {
      const [received, windows, rejected, dup, logBytes] = await Promise.all([
        value('pulsegate_readings_received_total'),
        value('pulsegate_windows_emitted_total'),
        value('pulsegate_readings_rejected_total'),
        value('pulsegate_readings_duplicate_total'),
        value('pulsegate_log_size_bytes'),
      ]);
      const secs = Math.round((Date.now() - started) / 1000);
      const line = `  ${secs}s | athletes acked ${progress['hr']?.readingsAcked ?? 0} | vehicles acked ${progress['br']?.readingsAcked ?? 0} | gateway: received ${received}, windows ${windows}, rejected ${rejected}, duplicates ${dup}, log ${(logBytes / 1024).toFixed(0)} KiB`;
      process.stdout.write(process.stdout.isTTY ? `\r${line.padEnd(140)}` : `${line}\n`);
    })();
  }, 1000);

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) process.exit(1);
    stopping = true;
    clearInterval(ticker);
    process.stdout.write('\nstopping: simulators, then the gateway (checkpoint, flush, close)...\n');
    abort.abort();
    await Promise.allSettled(sims);
    await proxy.close();
    await gw.close();
    process.stdout.write('stopped.\n');
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  for (const s of sims) s.catch((err: unknown) => process.stderr.write(`simulator failed: ${(err as Error).message}\n`));
}

main().catch((err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') process.stderr.write(`pulsegate demo: a port is already in use (${(err as Error).message}); set PULSEGATE_MQTT_PORT / PULSEGATE_HTTP_PORT / PULSEGATE_WS_PORT / PULSEGATE_PUSH_PROXY_PORT (0 = any free port)\n`);
  else process.stderr.write(`pulsegate demo: ${isGatewayError(err) ? err.message : (err as Error).stack}\n`);
  process.exit(isGatewayError(err, 'GW_ERR_CONFIG_INVALID') ? 3 : 1);
});
