/**
 * Mapped sources across kill -9: readings of a device without seq or ts (arrival time) and of a
 * source with seqPath come back from the log with the same event times and are counted exactly
 * once in the store and its windows; a source's seq gets the usual dedup and gap accounting.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import type { ChildGateway } from '../helpers/child-gateway.js';
import { eventually, sample, scrape } from '../helpers/metrics.js';
import { waitForValue } from '../helpers/wait.js';

const run = promisify(execFile);
const example = parseYaml(readFileSync(new URL('../../examples/real-sensors.yaml', import.meta.url), 'utf8')) as { kinds: unknown; ingest: { sources: unknown[] } };
const dataDir = mkdtempSync(join(tmpdir(), 'pg-real-kill-'));
let gw: ChildGateway | null = null;
afterAll(async () => {
  if (gw !== null && gw.child.exitCode === null) {
    gw.child.kill('SIGKILL');
    await gw.exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

const config = {
  kinds: example.kinds,
  ingest: { sources: [...example.ingest.sources, { topic: 'meters/{deviceId}', kind: 'power-plug', fields: { powerW: 'p' }, tsPath: 't', tsFormat: 'ms', seqPath: 'n' }] },
  window: { sizesMs: { 'power-plug': [1000], climate: [1000] }, idleTimeoutMs: 200 },
  sinks: { flushIntervalMs: 50 },
};

interface Row {
  deviceId: string;
  seq: number;
  ts: number;
  values: Record<string, number>;
}
async function rows(port: number, what: 'readings' | 'windows', params: string): Promise<Row[]> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/${what}?${params}`);
  const body = (await res.json()) as Record<string, Row[]>;
  return body[what] ?? [];
}
const pub = (port: number, topic: string, payload: unknown) => run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-V', 'mqttv311', '-t', topic, '-m', JSON.stringify(payload)]);

describe('mapped sources across kill -9', () => {
  it('should replay readings without seq or ts at their arrival times, exactly once, and count a source seq like seq', async () => {
    gw = await startChildGatewayWithConfig(dataDir, config);
    const t0 = Date.now();
    for (const temperature of [18.5, 19, 19.5]) await pub(gw.ports.mqtt, 'zigbee2mqtt/climate-9', { temperature, humidity: 50 });
    const base = Date.now() - 10_000;
    for (const [n, dt] of [[1, 0], [2, 1000], [2, 1000], [5, 2000]] as const) await pub(gw.ports.mqtt, 'meters/m-1', { n, t: base + dt, p: 100 + n });
    const m = await eventually(() => scrape(gw!.ports.http), (x) => sample(x, 'pulsegate_readings_duplicate_total') === 1);
    expect(sample(m, 'pulsegate_sequence_gaps_total')).toBe(2);
    expect(sample(m, 'pulsegate_readings_without_seq_total', { kind: 'power-plug' })).toBe(0);
    const before = await waitForValue(() => rows(gw!.ports.http, 'readings', `kind=climate&device=climate-9&from=${t0 - 1}`), (r) => r.length === 3, { what: 'climate readings before the kill' });

    gw.child.kill('SIGKILL');
    await gw.exited;
    gw = await startChildGatewayWithConfig(dataDir, config);

    // A marker published after the restart: once it is stored, so is everything the replay sent
    // the store before it (one ordered outbox).
    await pub(gw.ports.mqtt, 'zigbee2mqtt/marker', { temperature: 1 });
    await waitForValue(() => rows(gw!.ports.http, 'readings', `kind=climate&device=marker&from=${t0}`), (r) => r.length === 1, { what: 'the marker reading' });
    await waitForValue(() => rows(gw!.ports.http, 'windows', `kind=climate&device=marker&from=${Math.floor(t0 / 1000) * 1000}`), (w) => w.length === 1, { what: 'the marker window' });
    // The store after replay: the same readings at the same (arrival) times, once each.
    const after = await rows(gw.ports.http, 'readings', `kind=climate&device=climate-9&from=${t0 - 1}`);
    expect(after.map((r) => [r.ts, r.values['temperature']])).toEqual(before.map((r) => [r.ts, r.values['temperature']]));
    const windows = await rows(gw.ports.http, 'windows', `kind=climate&device=climate-9&from=${Math.floor(t0 / 1000) * 1000}`);
    expect(windows.reduce((n, x) => n + (x.values['temperature_count'] ?? 0), 0)).toBe(3);
    const meters = await waitForValue(() => rows(gw!.ports.http, 'readings', `kind=power-plug&device=m-1&from=${base - 1}&to=${base + 5000}`), (r) => r.length === 3);
    expect(meters.map((r) => [r.seq, r.ts, r.values['powerW']])).toEqual([[1, base, 101], [2, base + 1000, 102], [5, base + 2000, 105]]);
    gw.child.kill('SIGTERM');
    await gw.exited;
  });
});
