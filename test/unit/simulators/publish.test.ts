import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client, PublishPacket } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../../simulators/cli.js';
import { PublishError } from '../../../simulators/publisher.js';
import { runSimulator } from '../../../simulators/run.js';
import type { Summary, WindowCounts } from '../../../simulators/summary.js';
import { waitFor } from '../../helpers/wait.js';
import { startTestBroker, uniqueReadings, type DecodedReading, type TestBroker } from './aedes-broker.js';

const START = Date.UTC(2025, 10, 22, 8, 0, 0);
let broker: TestBroker | null = null;
const dirs: string[] = [];

afterEach(async () => {
  await broker?.close();
  broker = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Per-minute counts per device recomputed from what the broker received. */
function minuteCounts(readings: Iterable<DecodedReading>): Record<string, WindowCounts> {
  const out: Record<string, WindowCounts> = {};
  for (const r of readings) {
    const w = String(Math.floor(r.ts / 60_000) * 60_000);
    const d = (out[r.deviceId] ??= {});
    d[w] = (d[w] ?? 0) + 1;
  }
  return out;
}

function expectSummaryMatchesBroker(summary: Summary, received: TestBroker['received']): void {
  const unique = uniqueReadings(received);
  expect(summary.totals.readings).toBe(unique.size);
  for (const [id, d] of Object.entries(summary.byDevice)) expect(d.readings).toBe([...unique.values()].filter((r) => r.deviceId === id).length);
  const counts = minuteCounts(unique.values());
  for (const [id, w] of Object.entries(summary.windows['1m'].byDevice)) {
    if (Object.keys(w).length > 0) expect(w).toEqual(counts[id]);
  }
}

describe('simulator publishing', () => {
  it('simulator should deliver exactly what the summary says at QoS 1 with batches, duplicates and reordering', async () => {
    broker = await startTestBroker();
    const summary = await runSimulator({
      kind: 'bridge',
      url: broker.url,
      devices: 3,
      durationS: 300,
      rate: 3,
      realtime: false,
      seed: 5,
      startTs: START,
      batch: 4,
      duplicates: 0.05,
      outOfOrder: 0.05,
      connections: 2,
      qos: 1,
    });
    expect(summary.counts).toBe('acknowledged');
    expect(summary.stopped).toBe('completed');
    expect(summary.totals.readingsFailed).toBe(0);
    expect(summary.totals.publishes).toBe(broker.received.length);
    expect(broker.received.every((p) => p.qos === 1)).toBe(true);
    expect(summary.totals.duplicatesInjected).toBeGreaterThan(0);
    expect(summary.totals.readingsSent).toBe(summary.totals.readings + summary.totals.duplicatesInjected);
    expectSummaryMatchesBroker(summary, broker.received);
    const classes: Record<string, number> = {};
    for (const r of uniqueReadings(broker.received).values()) classes[r['vehicleClass'] as string] = (classes[r['vehicleClass'] as string] ?? 0) + 1;
    expect(summary.byClass).toEqual(classes);
    expect(new Set(broker.received.map((p) => p.topic))).toEqual(new Set(['sensors/bridge/bridge-1', 'sensors/bridge/bridge-2', 'sensors/bridge/bridge-3']));
  });

  it('simulator should send the same readings for the same seed and start time', async () => {
    broker = await startTestBroker();
    const run = () => runSimulator({ kind: 'heart-rate', url: broker!.url, devices: 2, count: 50, realtime: false, seed: 9, startTs: START, format: 'json' });
    await run();
    const first = broker.received.map((p) => p.payload.toString()).sort();
    broker.received.length = 0;
    await run();
    expect(broker.received.map((p) => p.payload.toString()).sort()).toEqual(first);
  });

  it('simulator should count only PUBACKed readings at QoS 1', async () => {
    // bridge... athlete-2's publishes after seq 3 never get their PUBACK.
    broker = await startTestBroker({
      authorizePublish(_client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void) {
        const seq = (JSON.parse(packet.payload.toString()) as { seq: number }).seq;
        if (packet.topic.endsWith('/athlete-2') && seq > 3) return; // withheld
        done(null);
      },
    });
    const warnings: string[] = [];
    const summary = await runSimulator({
      kind: 'heart-rate',
      url: broker.url,
      devices: 2,
      count: 10,
      realtime: false,
      seed: 1,
      startTs: START,
      format: 'json',
      perDeviceCredentials: true,
      password: 'pw-{device}',
      drainTimeoutMs: 300,
      onWarning: (m) => warnings.push(m),
    });
    expect(summary.byDevice['athlete-1']!.readings).toBe(10);
    expect(summary.byDevice['athlete-2']).toMatchObject({ readings: 3, maxSeq: 3 });
    expect(summary.totals.readings).toBe(13);
    expect(summary.totals.readingsFailed).toBe(7);
    expect(warnings.some((w) => w.includes('unacknowledged'))).toBe(true);
    expectSummaryMatchesBroker(summary, broker.received);
  });

  it('simulator should mark QoS 0 counts as sent, and pace a total rate', async () => {
    broker = await startTestBroker();
    const t0 = Date.now();
    const summary = await runSimulator({ kind: 'heart-rate', load: true, url: broker.url, devices: 20, totalRate: 2000, durationS: 1, qos: 0, batch: 5, seed: 3, startTs: START });
    const elapsed = Date.now() - t0;
    expect(summary.counts).toBe('sent');
    expect(summary.totals.readings).toBe(2000);
    expect(elapsed).toBeGreaterThan(800);
    // QoS 0 over loopback: everything written arrives (the broker may still be reading it).
    const received = broker.received;
    await waitFor(() => uniqueReadings(received).size >= summary.totals.readings, { timeoutMs: 5000, what: 'the broker to receive every QoS 0 reading' });
    expectSummaryMatchesBroker(summary, broker.received);
    expect(broker.received.every((p) => p.qos === 0 && p.payload[0] === 0x0a)).toBe(true);
    expect(broker.clientIds.size).toBe(4);
  });

  it('simulator should stop on abort, report progress and write the summary of what was acknowledged', async () => {
    broker = await startTestBroker();
    const dir = mkdtempSync(join(tmpdir(), 'pulsegate-sim-'));
    dirs.push(dir);
    const file = join(dir, 'out', 'summary.json');
    const controller = new AbortController();
    const progress: { sent: number; acked: number; done: boolean }[] = [];
    setTimeout(() => controller.abort(), 700);
    const summary = await runSimulator({
      kind: 'heart-rate',
      url: broker.url,
      devices: 3,
      rate: 20,
      seed: 1,
      summaryFile: file,
      signal: controller.signal,
      progressIntervalMs: 100,
      onProgress: (p) => progress.push({ sent: p.readingsSent, acked: p.readingsAcked, done: p.done }),
    });
    expect(summary.stopped).toBe('aborted');
    expect(summary.realtime).toBe(true);
    // ~0.7 s at 20 Hz for 3 athletes.
    expect(summary.totals.readings).toBeGreaterThan(20);
    expect(summary.totals.readings).toBeLessThan(80);
    expect(progress.length).toBeGreaterThan(3);
    expect(progress.at(-1)).toEqual({ sent: summary.totals.readingsSent, acked: summary.totals.readings, done: true });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(JSON.parse(JSON.stringify(summary)));
    expectSummaryMatchesBroker(summary, broker.received);
    // Realtime: event times follow the wall clock from the start.
    const last = Math.max(...Object.values(summary.byDevice).map((d) => d.maxTs ?? 0));
    expect(last - summary.startTs).toBeLessThan(1500);
  });

  it('simulator should reject an unreachable broker with a clear error', async () => {
    await expect(runSimulator({ kind: 'bridge', url: 'mqtt://127.0.0.1:1', count: 1, connectTimeoutMs: 2000 })).rejects.toThrow(PublishError);
  });
});

describe('simulator cli', () => {
  const io = () => {
    let out = '';
    let err = '';
    return {
      io: { out: { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream, err: { write: (s: string) => ((err += s), true) } as unknown as NodeJS.WritableStream },
      out: () => out,
      err: () => err,
    };
  };

  it('simulator cli should print help for every command and fail bad options with exit code 2', async () => {
    for (const cmd of [[], ['--help'], ['heart-rate', '--help'], ['bridge', '-h'], ['load', '--help']]) {
      const c = io();
      expect(await main(cmd, c.io)).toBe(0);
      expect(c.out()).toContain('Usage: pulsegate-sim');
    }
    const cases = [['fly'], ['bridge', '--devices', 'many'], ['bridge', '--qos', '2'], ['heart-rate', '--lanes', '2'], ['load', '--kind', 'boat'], ['bridge', '--duplicates', '1.5'], ['bridge', '--start-ts', 'yesterday'], ['heart-rate', '--nope']];
    for (const args of cases) {
      const c = io();
      expect(await main(args, c.io)).toBe(2);
      expect(c.err()).toMatch(/^pulsegate-sim: /);
    }
  });

  it('simulator cli should run a command and write the summary file', async () => {
    broker = await startTestBroker();
    const dir = mkdtempSync(join(tmpdir(), 'pulsegate-sim-'));
    dirs.push(dir);
    const file = join(dir, 'bridge.json');
    const c = io();
    const code = await main(['bridge', '--url', broker.url, '--devices', '2', '--duration', '120', '--no-realtime', '--seed', '4', '--start-ts', '2025-11-22T08:00:00Z', '--summary', file, '--quiet', '--format', 'json'], c.io);
    expect(c.err()).toBe('');
    expect(code).toBe(0);
    expect(c.out()).toContain('achieved');
    const summary = JSON.parse(readFileSync(file, 'utf8')) as Summary;
    expect(summary.startTs).toBe(START);
    expect(summary.seed).toBe(4);
    expectSummaryMatchesBroker(summary, broker.received);
  });
});
