/**
 * Publish-to-alert latency: from the write of the reading that completes an alert's window to
 * the MQTT alert (alerts/<rule>/<kind>/<device>) at a subscriber, while the gateway carries a
 * QoS 1 load of half its QoS 1 maximum, measured first in the same run.
 *
 *   npx tsx bench/alert-latency-bench.ts [--quick] [--seed N]     (also a step of npm run bench)
 *
 * 1. The gateway (bench/gateway-server.ts: startGateway, default alert rules) as a process.
 * 2. Its QoS 1 maximum: bench/publisher.ts (raw MQTT, 4 connections x 25 devices, 128 in flight
 *    each, single readings) as fast as PUBACKs come, readings/s from pulsegate_readings_received_total.
 * 3. The load: `pulsegate-sim load` (another process) paced at half of that, QoS 1, 100 devices.
 * 4. Meanwhile a probe device (heart-rate, its own connection, QoS 1) runs cycles of three
 *    readings 10 s of event time apart: 210 bpm, then 80 (which emits the spiking window: FIRING
 *    of the default rule heart-rate-spike), then 80 (RESOLVED). For each of the two, the time from
 *    writing the reading that emits the window to the alert arriving on a subscriber of its topic
 *    (one at a time). Probe event times are two days old, so the watermark moves only by them.
 * The path measured: group commit of the reading, window emission, rule evaluation, the alert's
 * record (its own group commit), the mqtt-alerts log consumer, the broker, the socket.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { Args } from './lib/args.js';
import { ROOT, sleep, spawnTs } from './lib/procs.js';
import { monoMs } from './lib/stats.js';
import { startPulsegate, type Sut } from './lib/suts.js';

export interface AlertLatencyResult {
  qos1MaxReadingsPerSec: number | null;
  loadTargetPerSec: number | null;
  loadAchievedPerSec: number | null;
  samples: number;
  timeouts: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  firing: { p50Ms: number | null; p99Ms: number | null };
  resolved: { p50Ms: number | null; p99Ms: number | null };
  error?: string;
}

const WINDOW_MS = 10_000;
const ALERT_TIMEOUT_MS = 10_000;

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
const r2 = (n: number | null): number | null => (n === null ? null : Math.round(n * 100) / 100);

/** Readings/s the gateway counted while bench/publisher.ts published QoS 1 as fast as it could. */
async function measureQos1Max(gw: Sut, durationS: number, warmupS: number): Promise<number> {
  const pub = spawnTs('publisher', 'publisher.ts', ['--port', String(gw.mqttPort), '--qos', '1', '--batch', '1', '--connections', '4', '--devices', '25', '--inflight', '128', '--duration', String(durationS + warmupS + 5), '--warmup', '0', '--prefix', 'max']);
  try {
    await pub.waitLine((l) => l['event'] === 'started', 20_000);
    await sleep(warmupS * 1000);
    const a = await gw.sample(1);
    await sleep(durationS * 1000);
    const b = await gw.sample(1);
    return (b.readings - a.readings) / ((b.at - a.at) / 1000);
  } finally {
    await pub.stop(5000);
  }
}

export async function runAlertLatencyBench(options: { quick: boolean; seed?: number }): Promise<AlertLatencyResult> {
  const cycles = options.quick ? 40 : 200;
  const result: AlertLatencyResult = { qos1MaxReadingsPerSec: null, loadTargetPerSec: null, loadAchievedPerSec: null, samples: 0, timeouts: 0, p50Ms: null, p99Ms: null, maxMs: null, firing: { p50Ms: null, p99Ms: null }, resolved: { p50Ms: null, p99Ms: null } };
  let gw: Sut | null = null;
  let load: ReturnType<typeof spawn> | null = null;
  const clients: mqtt.MqttClient[] = [];
  try {
    gw = await startPulsegate({ logLevel: 'error' });
    const max = await measureQos1Max(gw, options.quick ? 2 : 4, 0.5);
    result.qos1MaxReadingsPerSec = Math.round(max);
    const target = Math.max(100, Math.round(max / 2));
    result.loadTargetPerSec = target;

    load = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'simulators', 'cli.ts'), 'load', '--url', `mqtt://127.0.0.1:${gw.mqttPort}`, '--qos', '1', '--devices', '100', '--total-rate', String(target), '--duration', '3600', '--pre-encode', '0', '--seed', String(options.seed ?? 1), '--quiet'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    load.stderr?.resume();
    const watch = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: 'alert-latency-watch' });
    const probe = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: 'alert-latency-probe' });
    clients.push(watch, probe);
    let waiting: { state: string; resolve: (at: number) => void } | null = null;
    watch.on('message', (_topic, payload) => {
      if (payload.length === 0 || waiting === null) return;
      const state = (JSON.parse(payload.toString('utf8')) as { state: string }).state;
      if (state === waiting.state) waiting.resolve(monoMs());
    });
    await watch.subscribeAsync('alerts/heart-rate-spike/heart-rate/alert-latency-probe', { qos: 1 });

    // Let the load settle, then take its rate over the probe period from the gateway's counter.
    await sleep(1000);
    const before = await gw.sample(1);
    const base = Math.floor((Date.now() - 2 * 86_400_000) / WINDOW_MS) * WINDOW_MS;
    let seq = 1;
    const send = (ts: number, bpm: number): Promise<unknown> => probe.publishAsync('sensors/heart-rate/alert-latency-probe', JSON.stringify({ seq: seq++, ts, bpm }), { qos: 1 });
    const firing: number[] = [];
    const resolved: number[] = [];
    for (let i = 0; i < cycles; i++) {
      const start = base + i * 3 * WINDOW_MS;
      await send(start + 1000, 210);
      for (const [offset, state, into] of [[WINDOW_MS, 'FIRING', firing], [2 * WINDOW_MS, 'RESOLVED', resolved]] as const) {
        const arrived = new Promise<number | null>((resolve) => {
          const timer = setTimeout(() => resolve(null), ALERT_TIMEOUT_MS);
          waiting = { state, resolve: (at) => (clearTimeout(timer), resolve(at)) };
        });
        const t0 = monoMs();
        void send(start + offset + 1000, 80);
        const at = await arrived;
        waiting = null;
        if (at === null) result.timeouts++;
        else into.push(at - t0);
      }
    }
    const after = await gw.sample(1);
    result.loadAchievedPerSec = Math.round((after.readings - before.readings) / ((after.at - before.at) / 1000));
    const all = [...firing, ...resolved].sort((a, b) => a - b);
    firing.sort((a, b) => a - b);
    resolved.sort((a, b) => a - b);
    result.samples = all.length;
    result.p50Ms = r2(percentile(all, 50));
    result.p99Ms = r2(percentile(all, 99));
    result.maxMs = r2(all[all.length - 1] ?? null);
    result.firing = { p50Ms: r2(percentile(firing, 50)), p99Ms: r2(percentile(firing, 99)) };
    result.resolved = { p50Ms: r2(percentile(resolved, 50)), p99Ms: r2(percentile(resolved, 99)) };
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    for (const c of clients) c.end(true);
    if (load !== null && load.exitCode === null) {
      const exited = new Promise((resolve) => load!.once('exit', resolve));
      load.kill('SIGKILL');
      await exited;
    }
    await gw?.stop();
  }
  return result;
}

export function formatAlertLatency(r: AlertLatencyResult): string {
  if (r.error !== undefined) return `publish-to-alert latency: FAILED: ${r.error}`;
  return (
    `publish-to-alert latency (reading written -> MQTT alert at a subscriber): p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms over ${r.samples} alerts` +
    `${r.timeouts > 0 ? ` (${r.timeouts} not within ${ALERT_TIMEOUT_MS} ms)` : ''}; FIRING p50/p99 ${r.firing.p50Ms}/${r.firing.p99Ms} ms, RESOLVED ${r.resolved.p50Ms}/${r.resolved.p99Ms} ms\n` +
    `  under a QoS 1 load of ${r.loadAchievedPerSec?.toLocaleString('en-US')} readings/s (target ${r.loadTargetPerSec?.toLocaleString('en-US')}: half of the QoS 1 maximum ${r.qos1MaxReadingsPerSec?.toLocaleString('en-US')} readings/s measured in this run)`
  );
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = new Args(process.argv.slice(2));
  const r = await runAlertLatencyBench({ quick: args.has('quick'), seed: args.num('seed', 1) });
  process.stdout.write(formatAlertLatency(r) + '\n' + JSON.stringify(r) + '\n');
  if (r.error !== undefined) process.exitCode = 1;
}
