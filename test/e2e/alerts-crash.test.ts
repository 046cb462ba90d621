import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyWebhookSignature } from '../../gateway/delivery/webhook.js';
import { RECORD_TYPES } from '../../gateway/log/types.js';
import { alertTopic, decodeAlertTransition, type AlertEvent } from '../../gateway/wire/alert.js';
import { runSimulator } from '../../simulators/index.js';
import type { Summary } from '../../simulators/summary.js';
import { startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import type { ChildGateway } from '../helpers/child-gateway.js';
import { readLogRecords } from '../helpers/log-records.js';
import { eventually, sampleOr0, scrape } from '../helpers/metrics.js';
import { observe, waitFor } from '../helpers/wait.js';

/**
 * The promise of the alert tier: with the gateway killed (-9) twice while an alert fires, every
 * episode's FIRING and RESOLVED is in the log exactly once, in order, and reaches an MQTT
 * subscriber on alerts/# (at least once; after dedupe by offset exactly once, in order); the
 * episodes are those of the anomalies the heart-rate simulator says it injected.
 */
const KILLS = 2;
const WINDOW_MS = 10_000;
const dataDir = mkdtempSync(join(tmpdir(), 'pg-alerts-crash-'));
afterAll(() => (process.env['PULSEGATE_KEEP_TEST_DATA'] ? process.stderr.write(`kept ${dataDir}\n`) : rmSync(dataDir, { recursive: true, force: true })));

/** A port free now (the gateway restarts on the same ports, so clients reconnect to it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

interface Arrival {
  readonly event: AlertEvent;
  readonly retain: boolean;
}

/** Window starts (10 s, UTC-aligned) holding readings of an anomaly kind the simulator generated, per device. */
function anomalyWindows(summary: Summary, kind: 'spike' | 'flatline'): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>();
  for (const a of summary.anomalies) {
    if (a.kind !== kind) continue;
    const set = out.get(a.deviceId) ?? new Set<number>();
    for (let w = Math.floor(a.startTs / WINDOW_MS) * WINDOW_MS; w <= a.endTs; w += WINDOW_MS) set.add(w);
    out.set(a.deviceId, set);
  }
  return out;
}

/**
 * Of those, the windows whose acknowledged readings hold the anomaly (the summary's bpm stats):
 * the gateway has these readings for sure. A publish whose PUBACK the kill cut off may be in the
 * gateway too (not counted acknowledged), so the gateway can see more, never less.
 */
function acknowledgedAnomalyWindows(summary: Summary, kind: 'spike' | 'flatline'): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>();
  for (const [deviceId, windows] of anomalyWindows(summary, kind)) {
    const stats = summary.windows['10s'].bpmByDevice?.[deviceId] ?? {};
    out.set(deviceId, new Set([...windows].filter((w) => {
      const s = stats[String(w)];
      return s !== undefined && (kind === 'spike' ? s.max > 200 : s.min < 20);
    })));
  }
  return out;
}

describe('alerts through kill -9', () => {
  it('should log, publish and match each episode of the injected anomalies exactly once through two kill -9', async () => {
    const [mqttPort, httpPort] = [await freePort(), await freePort()];
    // A webhook receiver too: what it takes must be the log's transitions, a repeat only with the same key and body.
    const SECRET = 'alerts-crash-webhook-secret';
    writeFileSync(join(dataDir, 'webhook.secret'), SECRET);
    const posts: { key: string; body: string; valid: boolean }[] = [];
    const receiver = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        posts.push({ key: String(req.headers['idempotency-key']), body: body.toString('utf8'), valid: verifyWebhookSignature(SECRET, req.headers['pulsegate-signature'] as string | undefined, body, Math.floor(Date.now() / 1000)) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const config = { mqtt: { port: mqttPort }, http: { port: httpPort }, log: { checkpointIntervalMs: 500 }, delivery: { webhooks: [{ name: 'crash', url: hookUrl, secretFile: join(dataDir, 'webhook.secret'), retryInitialMs: 50, retryMaxMs: 500 }] } };
    let gw: ChildGateway = await startChildGatewayWithConfig(dataDir, config);

    const arrivals: Arrival[] = [];
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { protocolVersion: 4, reconnectPeriod: 100, connectTimeout: 2000, clientId: 'alerts-watcher' });
    sub.on('error', () => undefined);
    // The broker's sessions are in memory (README, "Alerts over MQTT"): a transition published
    // while the watcher is away (the backlog of a crash, right after the restart, before it has
    // reconnected) is not queued for it. Its offline spans, from a kill to its reconnect.
    const offline: Array<{ from: number; to: number }> = [];
    sub.on('connect', () => {
      const last = offline.at(-1);
      if (last !== undefined && last.to === Infinity) last.to = Date.now();
    });
    sub.on('message', (_topic, payload, packet) => {
      if (payload.length > 0) arrivals.push({ event: JSON.parse(payload.toString('utf8')) as AlertEvent, retain: packet.retain });
    });
    await sub.subscribeAsync('alerts/#', { qos: 1 });

    // Event time from 20 minutes ago, 20x faster than real time: about 25 s of load.
    const startTs = Math.floor((Date.now() - 20 * 60_000) / 60_000) * 60_000;
    const sim = runSimulator({
      kind: 'heart-rate',
      devices: 3,
      rate: 5,
      url: `mqtt://127.0.0.1:${mqttPort}`,
      qos: 1,
      realtime: false,
      totalRate: 300,
      durationS: 480,
      startTs,
      seed: 0x5eed,
      anomalyProbability: 0.01,
      drainTimeoutMs: 30_000,
      onWarning: (m) => process.stderr.write(`sim: ${m}\n`),
    });

    const unique = () => new Set(arrivals.map((a) => a.event.offset)).size;
    const firingNow = () => {
      const resolved = new Set(arrivals.filter((a) => a.event.state === 'RESOLVED').map((a) => a.event.id));
      return arrivals.some((a) => a.event.state === 'FIRING' && !resolved.has(a.event.id));
    };
    for (let k = 0; k < KILLS; k++) {
      const seen = unique();
      // Mid-episode: some transitions since the last restart, and one alert firing now.
      await waitFor(() => unique() >= seen + 3 && firingNow(), { timeoutMs: 60_000, what: `an alert firing (kill ${k + 1})` });
      offline.push({ from: Date.now(), to: Infinity });
      gw.child.kill('SIGKILL');
      await gw.exited;
      gw = await startChildGatewayWithConfig(dataDir, config);
      process.stderr.write(`alerts-crash: kill ${k + 1} after ${unique()} transitions seen\n`);
    }
    const summary = await sim;
    // A publish in flight at a kill may fail at the client (its PUBACK never came); nearly all get through.
    expect(summary.totals.readingsFailed).toBeLessThan(summary.totals.readingsSent * 0.05);

    // Everything logged is published (lag 0); a bounded window for QoS 1 deliveries in flight.
    // The gateway may still log a transition after the load (a window closed by the clock, a
    // silence). What must have been delivered: what was logged before the consumers first showed
    // lag 0 (lagZeroFrom), once they show lag 0 again a second later (those records are durable by then).
    const lagZero = (t: string): boolean => sampleOr0(t, 'pulsegate_log_consumer_lag_records', { consumer: 'mqtt-alerts' }) === 0 && sampleOr0(t, 'pulsegate_log_consumer_lag_records', { consumer: 'webhook-crash' }) === 0;
    await eventually(() => scrape(httpPort), lagZero, 20_000);
    const lagZeroFrom = Date.now();
    await observe(1000);
    await eventually(() => scrape(httpPort), lagZero, 20_000);
    await observe(500);
    const apiFrom = Date.now();
    const firingApi = ((await (await fetch(`http://127.0.0.1:${httpPort}/v1/alerts`)).json()) as { alerts: AlertEvent[] }).alerts;
    const apiTo = Date.now();
    sub.end(true);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    receiver.closeAllConnections();
    await new Promise((resolve) => receiver.close(resolve));

    // The log: each (id, state) once; a RESOLVED after its FIRING.
    const logged = (await readLogRecords(join(dataDir, 'log'))).filter((r) => r.type === RECORD_TYPES.alert).map((r) => ({ at: r.timestamp, event: { ...decodeAlertTransition(r.payload), offset: r.offset } as AlertEvent }));
    const byKey = new Map<string, AlertEvent>();
    for (const { event } of logged) {
      const key = `${event.id}:${event.state}`;
      expect(byKey.has(key), `${key} logged twice`).toBe(false);
      byKey.set(key, event);
      if (event.state === 'RESOLVED') expect(byKey.has(`${event.id}:FIRING`), `${key} without its FIRING before it`).toBe(true);
    }
    expect(logged.length).toBeGreaterThan(10);

    // MQTT: deduped by offset, the very records of the log, first arrivals in log order, and each
    // transition logged before the stop arrived.
    const firstByOffset = new Map<number, AlertEvent>();
    for (const a of arrivals) if (!firstByOffset.has(a.event.offset)) firstByOffset.set(a.event.offset, a.event);
    const logByOffset = new Map(logged.map((l) => [l.event.offset, l.event]));
    for (const [offset, event] of firstByOffset) expect(event, `MQTT offset ${offset}`).toEqual(logByOffset.get(offset));
    // In log order on each topic (so a FIRING before its RESOLVED); MQTT orders messages per
    // topic only [MQTT-4.6.0-6], across topics a subscriber orders by offset.
    const byTopic = new Map<string, number[]>();
    for (const [offset, e] of firstByOffset) byTopic.set(alertTopic(e), [...(byTopic.get(alertTopic(e)) ?? []), offset]);
    for (const [topic, offsets] of byTopic) expect(offsets, topic).toEqual([...offsets].sort((a, b) => a - b));
    // Logged shortly before a kill (its publish may have died with the process, and the consumer
    // publishes it again after the restart) up to the reconnect: may be missed; nothing else.
    const mayMiss = (at: number): boolean => offline.some((o) => at >= o.from - 2000 && at <= o.to);
    const missed = logged.filter((l) => l.at < lagZeroFrom && !mayMiss(l.at) && !firstByOffset.has(l.event.offset)).map((l) => `${l.event.rule}/${l.event.deviceId} ${l.event.state} @${l.event.offset}`);
    expect(missed).toEqual([]);
    process.stderr.write(`alerts-crash: ${logged.filter((l) => mayMiss(l.at) && !firstByOffset.has(l.event.offset)).length} transitions logged around a kill not seen on MQTT (allowed)\n`);
    // Webhooks: signed; each key always with the same body; every transition logged before the stop POSTed.
    expect(posts.every((p) => p.valid)).toBe(true);
    const bodyByKey = new Map<string, string>();
    for (const p of posts) {
      expect(bodyByKey.get(p.key) ?? p.body, `webhook ${p.key}`).toBe(p.body);
      bodyByKey.set(p.key, p.body);
      const e = JSON.parse(p.body) as AlertEvent;
      expect(e).toEqual(logByOffset.get(e.offset));
      expect(p.key).toBe(`${e.id}:${e.state}`);
    }
    expect(logged.filter((l) => l.at < lagZeroFrom && !bodyByKey.has(`${l.event.id}:${l.event.state}`)).map((l) => l.event.offset)).toEqual([]);
    process.stderr.write(`alerts-crash: ${posts.length} webhook POSTs of ${bodyByKey.size} transitions\n`);
    const redelivered = arrivals.length - firstByOffset.size;
    process.stderr.write(`alerts-crash: ${logged.length} transitions logged, ${arrivals.length} MQTT arrivals (${redelivered} redelivered or retained), ${summary.anomalies.length} anomalies injected\n`);

    // /v1/alerts: what fires now is exactly the FIRINGs of the log without a RESOLVED (before the stop).
    // An episode with a transition logged while the request ran may be seen either way.
    const during = new Set(logged.filter((l) => l.at >= apiFrom && l.at <= apiTo).map((l) => l.event.id));
    const resolvedBefore = new Set(logged.filter((l) => l.at < apiFrom && l.event.state === 'RESOLVED').map((l) => l.event.id));
    const openEpisodes = logged.filter((l) => l.at < apiFrom && l.event.state === 'FIRING' && !resolvedBefore.has(l.event.id)).map((l) => l.event.id);
    expect(firingApi.map((a) => a.id).filter((id) => !during.has(id)).sort()).toEqual(openEpisodes.filter((id) => !during.has(id)).sort());

    // The anomalies: every window whose acknowledged readings hold a spike (flatline) lies in an
    // episode of heart-rate-spike (-flatline) of its device; every such episode starts at a window
    // where the simulator injected one, not preceded by an acknowledged one (that would have started it).
    for (const [rule, kind] of [['heart-rate-spike', 'spike'], ['heart-rate-flatline', 'flatline']] as const) {
      const generated = anomalyWindows(summary, kind);
      const acknowledged = acknowledgedAnomalyWindows(summary, kind);
      const episodes = logged.filter((l) => l.event.rule === rule && l.event.state === 'FIRING').map((l) => l.event);
      const resolvedAt = new Map(logged.filter((l) => l.event.rule === rule && l.event.state === 'RESOLVED').map((l) => [l.event.id, l.event.resolvedAt!]));
      expect([...acknowledged.values()].reduce((n, w) => n + w.size, 0), `${kind}s injected and acknowledged`).toBeGreaterThan(0);
      for (const [deviceId, starts] of acknowledged) {
        for (const w of starts) {
          const covered = episodes.some((e) => e.deviceId === deviceId && e.episodeStart <= w && w < (resolvedAt.get(e.id) ?? Number.POSITIVE_INFINITY) - WINDOW_MS);
          expect(covered, `${rule}: ${deviceId}'s window ${new Date(w).toISOString()} holds a ${kind} but no episode`).toBe(true);
        }
      }
      for (const e of episodes) {
        const explained = (generated.get(e.deviceId) ?? new Set()).has(e.episodeStart) && !(acknowledged.get(e.deviceId) ?? new Set()).has(e.episodeStart - WINDOW_MS);
        expect(explained, `${rule} episode of ${e.deviceId} at ${new Date(e.episodeStart).toISOString()} starts where a ${kind} was injected`).toBe(true);
      }
    }
  }, 240_000);
});
