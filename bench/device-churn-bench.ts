/**
 * Memory and checkpoint size when many distinct devices appear (anonymous mode: any id may
 * publish). Prints figures; not a pass/fail test.
 *
 *   npx tsx bench/device-churn-bench.ts [--devices 300000] [--connections 4] [--checkpoint-ms 2000]
 *       [--max-heap-mb N]
 *
 * One gateway (the CLI, `pulsegate start --config`, default bounds) takes one QoS 0 heart-rate
 * reading from each of --devices distinct device ids. Once it has counted them all and written a
 * checkpoint, the figures are: RSS now and its peak (/proc), V8 heap used, devices with open
 * window state and forgotten devices' horizons (gauges), and the newest checkpoint file's size.
 * State must stay bounded by window.maxDevices, window.maxForgottenDevices and ingest.maxDevices,
 * whatever --devices is. Heap used includes garbage not yet collected; --max-heap-mb caps the
 * gateway's old space (--max-old-space-size), so a run that ends with every reading counted shows
 * that the live state fits under the cap.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { Args } from './lib/args.js';
import { peakRssMb, ROOT, rssMb, sleep, spawnBinary } from './lib/procs.js';
import { metricSum, parseMetrics } from './lib/suts.js';
import { monoMs } from './lib/stats.js';

const args = new Args(process.argv.slice(2));
const devices = args.num('devices', 300_000);
const connections = args.num('connections', 4);
const checkpointMs = args.num('checkpoint-ms', 2000);
const maxHeapMb = args.num('max-heap-mb', 0);

const dir = mkdtempSync(join(tmpdir(), 'pulsegate-churn-'));
writeFileSync(
  join(dir, 'config.json'),
  JSON.stringify({
    dataDir: join(dir, 'data'),
    logLevel: 'info',
    mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
    http: { host: '127.0.0.1', port: 0 },
    log: { checkpointIntervalMs: checkpointMs },
  }),
);
const gw = spawnBinary('pulsegate', process.execPath, [...(maxHeapMb > 0 ? [`--max-old-space-size=${maxHeapMb}`] : []), '--import', 'tsx', join(ROOT, 'gateway/cli.ts'), 'start', '--config', join(dir, 'config.json')]);

async function metrics(httpPort: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
  return parseMetrics(await res.text());
}

function newestCheckpointBytes(logDir: string): number {
  const files = readdirSync(logDir).filter((f) => f.startsWith('checkpoint-'));
  let best = { mtime: 0, size: 0 };
  for (const f of files) {
    const st = statSync(join(logDir, f));
    if (st.mtimeMs > best.mtime) best = { mtime: st.mtimeMs, size: st.size };
  }
  return best.size;
}

try {
  const ready = await gw.waitLine((l) => l['msg'] === 'pulsegate ready', 60_000).catch(() => null);
  if (ready === null) throw new Error(`gateway did not start: ${gw.stderrTail()}`);
  const mqttPort = Number(ready['mqtt']);
  const httpPort = Number(ready['http']);
  const rssBefore = rssMb(gw.pid);

  const clients = await Promise.all(
    Array.from({ length: connections }, (_, i) => mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: `churn-${i}` })),
  );
  const t0 = monoMs();
  const ts = Date.now() - 60_000;
  await Promise.all(
    clients.map(async (c, ci) => {
      // In rounds of 1000, each awaited until written: the socket's pace, not a queue in this process.
      for (let d = ci; d < devices; ) {
        const round: Promise<void>[] = [];
        for (let k = 0; k < 1000 && d < devices; k++, d += connections) {
          const topic = `sensors/heart-rate/dev-${d}`;
          round.push(new Promise<void>((resolve) => c.publish(topic, JSON.stringify({ seq: 1, ts, bpm: 70 }), { qos: 0 }, () => resolve())));
        }
        await Promise.all(round);
      }
      await c.publishAsync('sensors/heart-rate/churn-last', JSON.stringify({ seq: 1 + ci, ts, bpm: 70 }), { qos: 1 });
    }),
  );
  const sent = monoMs() - t0;
  const deadline = monoMs() + 300_000;
  let m = await metrics(httpPort);
  while (metricSum(m, 'pulsegate_readings_received_total', 'kind="heart-rate"') < devices + connections && monoMs() < deadline) {
    await sleep(500);
    m = await metrics(httpPort);
  }
  const received = metricSum(m, 'pulsegate_readings_received_total', 'kind="heart-rate"');
  // Two checkpoint intervals: the newest checkpoint covers everything taken in.
  await sleep(2 * checkpointMs + 500);
  m = await metrics(httpPort);
  const logDir = join(dir, 'data', 'log');
  const out = {
    devices,
    maxHeapMb: maxHeapMb > 0 ? maxHeapMb : null,
    received,
    publishSeconds: +(sent / 1000).toFixed(1),
    rssBeforeMb: rssBefore,
    rssAfterMb: rssMb(gw.pid),
    rssPeakMb: peakRssMb(gw.pid),
    heapUsedMb: +(metricSum(m, 'pulsegate_nodejs_heap_size_used_bytes') / 1_048_576).toFixed(1),
    windowDevices: metricSum(m, 'pulsegate_window_devices'),
    windowHorizons: metricSum(m, 'pulsegate_window_horizons'),
    devicesEvicted: metricSum(m, 'pulsegate_window_devices_evicted_total'),
    horizonsDropped: metricSum(m, 'pulsegate_window_horizons_dropped_total'),
    checkpointBytes: newestCheckpointBytes(logDir),
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  for (const c of clients) await c.endAsync();
} finally {
  await gw.stop(15_000);
  rmSync(dir, { recursive: true, force: true });
}
