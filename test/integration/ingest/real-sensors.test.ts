/**
 * Real sensors on their own topics (README "Real sensors"): Tasmota- and Zigbee2MQTT-shaped JSON
 * published with Debian's mosquitto_pub lands as readings and windows of the kinds that
 * examples/real-sensors.yaml defines; a device without seq/ts shows its limits in the metrics;
 * mapped payloads get the usual rejection reasons and dead letters; {deviceId} binds to the
 * device's credentials like sensors/<kind>/<id>.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { hashSecret } from '../../../gateway/ingest/credentials.js';
import { decodeDeadLetter } from '../../../gateway/log/dead-letter.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { readLogRecords } from '../../helpers/log-records.js';
import { eventually, sample, scrape } from '../../helpers/metrics.js';
import { waitForValue } from '../../helpers/wait.js';
import { runProfile, type ProfileOptions } from '../../../simulators/profiles.js';

const run = promisify(execFile);
const example = parseYaml(readFileSync(new URL('../../../examples/real-sensors.yaml', import.meta.url), 'utf8')) as { kinds: unknown; ingest: { sources: unknown } };

/** The example's kinds and sources, with 1 s windows so that a short test sees them emitted. */
function overrides(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kinds: example.kinds,
    ingest: { sources: example.ingest.sources },
    window: { sizesMs: { 'power-plug': [1000], climate: [1000] }, idleTimeoutMs: 200 },
    sinks: { flushIntervalMs: 50 },
    ...extra,
  };
}

async function pub(gw: TestGateway, topic: string, payload: string, auth: string[] = []): Promise<void> {
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(gw.ports.mqtt), '-q', '1', '-V', 'mqttv311', ...auth, '-t', topic, '-m', payload]);
}

interface Rows<T> {
  count: number;
  readings?: T[];
  windows?: T[];
}
interface ReadingRow {
  deviceId: string;
  seq: number;
  ts: number;
  values: Record<string, number | string>;
}
interface WindowRow {
  deviceId: string;
  sizeMs: number;
  start: number;
  values: Record<string, number>;
}

async function query<T>(gw: TestGateway, what: 'readings' | 'windows', params: string): Promise<T[]> {
  const res = await fetch(`http://127.0.0.1:${gw.ports.http}/v1/${what}?${params}`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as Rows<T>;
  return body[what] ?? [];
}

const tasmota = (timeMs: number, power: number, total: number): string =>
  JSON.stringify({
    Time: new Date(timeMs).toISOString().slice(0, 19),
    ENERGY: { TotalStartTime: '2026-01-01T00:00:00', Total: total, Yesterday: 1.1, Today: 0.2, Period: 0, Power: power, ApparentPower: power, ReactivePower: 0, Factor: 1, Voltage: 230, Current: 0.4 },
  });

describe('real sensors (examples/real-sensors.yaml, mosquitto_pub)', () => {
  let gw: TestGateway;
  const dataDir = mkdtempSync(join(tmpdir(), 'pg-real-'));
  beforeAll(async () => {
    gw = await startTestGateway(overrides(), dataDir);
  });
  afterAll(async () => gw?.dispose());

  it('should store Tasmota-shaped JSON on tele/<name>/SENSOR as power-plug readings with the event time of its Time field, and their windows', async () => {
    // Whole seconds (Tasmota's Time has no fraction), in the past so the windows can close.
    const base = Math.floor(Date.now() / 1000) * 1000 - 20_000;
    const powers = [100, 120, 80, 300];
    for (let i = 0; i < powers.length; i++) await pub(gw, 'tele/plug-1/SENSOR', tasmota(base + i * 1000, powers[i]!, 10 + i / 100));
    const range = `kind=power-plug&from=${base - 1}&to=${base + 10_000}`;
    const readings = await waitForValue(() => query<ReadingRow>(gw, 'readings', range), (r) => r.length === powers.length, { what: 'power-plug readings' });
    expect(readings.map((r) => [r.deviceId, r.ts, r.values['powerW']])).toEqual(powers.map((p, i) => ['plug-1', base + i * 1000, p]));
    expect(readings[0]!.values).toEqual({ powerW: 100, voltageV: 230, currentA: 0.4, energyTotalKwh: 10 });
    // One 1 s window per reading: the first three close as the next reading moves the watermark, the last on idle.
    const windows = await waitForValue(() => query<WindowRow>(gw, 'windows', range), (w) => w.length === powers.length, { what: 'power-plug windows' });
    expect(windows.map((w) => [w.start, w.values['count'], w.values['powerW_mean'], w.values['powerW_max']])).toEqual(powers.map((p, i) => [base + i * 1000, 1, p, p]));
    const m = await scrape(gw.ports.http);
    expect(sample(m, 'pulsegate_readings_received_total', { kind: 'power-plug' })).toBe(powers.length);
    expect(sample(m, 'pulsegate_readings_without_seq_total', { kind: 'power-plug' })).toBe(powers.length);
    expect(sample(m, 'pulsegate_readings_arrival_time_total', { kind: 'power-plug' })).toBe(0);
  });

  it('should take Zigbee2MQTT JSON without time or seq at its arrival time, drop a repeat of the same bytes, and show both in the metrics', async () => {
    const before = await scrape(gw.ports.http);
    const t0 = Date.now();
    const payloads = [21.5, 21.75, 22].map((temperature, i) => JSON.stringify({ battery: 97, humidity: 40 + i, linkquality: 120, temperature, voltage: 2980 }));
    await pub(gw, 'zigbee2mqtt/climate-1', payloads[0]!);
    await pub(gw, 'zigbee2mqtt/climate-1', payloads[1]!);
    await pub(gw, 'zigbee2mqtt/climate-1', payloads[1]!); // a repeat, within dedupHorizonMs (2 s)
    await pub(gw, 'zigbee2mqtt/climate-1', payloads[2]!);
    const t1 = Date.now();
    const range = `kind=climate&from=${t0 - 1}&to=${t1 + 1}`;
    const readings = await waitForValue(() => query<ReadingRow>(gw, 'readings', range), (r) => r.length === 3, { what: 'climate readings' });
    expect(readings.map((r) => r.values['temperature'])).toEqual([21.5, 21.75, 22]);
    for (const r of readings) {
      expect(r.ts).toBeGreaterThanOrEqual(t0);
      expect(r.ts).toBeLessThanOrEqual(t1);
      expect(r.seq).toBe(0);
    }
    // A window starts on a whole second, up to 1 s before the first reading.
    const windowRange = `kind=climate&from=${Math.floor(t0 / 1000) * 1000}&to=${t1 + 1}`;
    const windows = await waitForValue(() => query<WindowRow>(gw, 'windows', windowRange), (w) => w.reduce((n, x) => n + (x.values['temperature_count'] ?? 0), 0) === 3, { what: 'climate windows' });
    expect(windows.every((w) => w.deviceId === 'climate-1' && w.sizeMs === 1000)).toBe(true);
    const after = await scrape(gw.ports.http);
    const delta = (name: string, labels: Record<string, string> = {}): number => sample(after, name, labels) - sample(before, name, labels);
    expect(delta('pulsegate_content_duplicates_total')).toBe(1);
    expect(delta('pulsegate_readings_arrival_time_total', { kind: 'climate' })).toBe(3);
    expect(delta('pulsegate_readings_without_seq_total', { kind: 'climate' })).toBe(3);
    expect(delta('pulsegate_readings_received_total', { kind: 'climate' })).toBe(3);
    // No seq, no gap accounting: nothing counted as a gap, a (device, seq) duplicate or a reset.
    expect(delta('pulsegate_sequence_gaps_total')).toBe(0);
    expect(delta('pulsegate_readings_duplicate_total')).toBe(0);
  });

  it('should reject bad mapped payloads with the usual reasons and keep each as a dead letter', async () => {
    const before = await scrape(gw.ports.http);
    const now = Date.now();
    await pub(gw, 'zigbee2mqtt/climate-2', JSON.stringify({ temperature: 999 })); // out of range
    await pub(gw, 'zigbee2mqtt/climate-2', JSON.stringify({ humidity: 50 })); // required field missing
    await pub(gw, 'zigbee2mqtt/climate-2', 'online'); // not JSON
    await pub(gw, 'zigbee2mqtt/bridge/state', 'online'); // no source has this shape
    await pub(gw, 'tele/plug-2/SENSOR', tasmota(now + 86_400_000, 10, 1)); // a day ahead
    await pub(gw, 'tele/plug-2/SENSOR', JSON.stringify({ Time: 'yesterday', ENERGY: { Power: 1 } }));
    const after = await eventually(
      () => scrape(gw.ports.http),
      (m) => sample(m, 'pulsegate_readings_rejected_total', { reason: 'invalid' }) - sample(before, 'pulsegate_readings_rejected_total', { reason: 'invalid' }) === 3,
    );
    const delta = (reason: string): number => sample(after, 'pulsegate_readings_rejected_total', { reason }) - sample(before, 'pulsegate_readings_rejected_total', { reason });
    expect([delta('decode_error'), delta('bad_topic'), delta('timestamp_out_of_range')]).toEqual([1, 1, 1]);
    expect(await query<ReadingRow>(gw, 'readings', 'kind=climate&device=climate-2')).toEqual([]);

    // The log is read back once the gateway is closed (dispose() closes it again, a no-op).
    await gw.close();
    const records = await readLogRecords(join(dataDir, 'log'));
    const dead = records.filter((r) => r.type === RECORD_TYPES.deadLetter).map((r) => decodeDeadLetter(r.payload));
    expect(dead.map((d) => [d.topic, d.reason])).toEqual([
      ['zigbee2mqtt/climate-2', 'invalid'],
      ['zigbee2mqtt/climate-2', 'invalid'],
      ['zigbee2mqtt/climate-2', 'decode_error'],
      ['zigbee2mqtt/bridge/state', 'bad_topic'],
      ['tele/plug-2/SENSOR', 'timestamp_out_of_range'],
      ['tele/plug-2/SENSOR', 'invalid'],
    ]);
    expect(dead[0]!.detail).toContain('temperature must be a number in [-40, 85], got 999 (temperature)');
    expect(dead[1]!.detail).toBe('missing field temperature (temperature)');
    expect(dead[3]!.detail).toContain('tele/{deviceId}/SENSOR');
    expect(dead[5]!.detail).toContain('Time (ts) must be an ISO 8601 date and time, got "yesterday"');
  });
});

describe('real sensors with device credentials', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-real-cred-'));
    const file = join(dir, 'devices.yaml');
    writeFileSync(file, `devices:\n  - username: plug-7\n    secret: "${await hashSecret('plug-seven')}"\n  - username: climate-7\n    secret: "${await hashSecret('climate-seven')}"\n`);
    gw = await startTestGateway(overrides({ mqtt: { allowAnonymous: false, credentialsFile: file } }));
  });
  afterAll(async () => gw?.dispose());

  it("should bind a source's {deviceId} to the device's username: its own topics only", async () => {
    const plug = ['-i', 'plug-7', '-u', 'plug-7', '-P', 'plug-seven'];
    const now = Math.floor(Date.now() / 1000) * 1000;
    await pub(gw, 'tele/plug-8/SENSOR', tasmota(now, 50, 1), plug);
    await pub(gw, 'zigbee2mqtt/climate-7', JSON.stringify({ temperature: 20 }), plug);
    await pub(gw, 'tele/plug-7/SENSOR', tasmota(now, 55, 1), plug);
    await pub(gw, 'zigbee2mqtt/climate-7', JSON.stringify({ temperature: 19 }), ['-i', 'climate-7', '-u', 'climate-7', '-P', 'climate-seven']);
    const m = await eventually(
      () => scrape(gw.ports.http),
      (x) => sample(x, 'pulsegate_readings_received_total', { kind: 'power-plug' }) === 1 && sample(x, 'pulsegate_readings_received_total', { kind: 'climate' }) === 1,
    );
    expect(sample(m, 'pulsegate_readings_rejected_total', { reason: 'unauthorized' })).toBe(2);
    const readings = await waitForValue(() => query<ReadingRow>(gw, 'readings', 'kind=climate'), (r) => r.length === 1);
    expect(readings[0]!.values['temperature']).toBe(19);
  });
});

describe('real sensors from the simulator profiles', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway(overrides());
  });
  afterAll(async () => gw?.dispose());

  const sim = (o: Partial<ProfileOptions> & Pick<ProfileOptions, 'profile'>): ProfileOptions => ({
    devices: 3,
    prefix: `${o.profile}-`,
    intervalS: 1,
    count: 5,
    seed: 7,
    startTs: Math.floor(Date.now() / 1000) * 1000 - 30_000,
    realtime: false,
    repeat: 0,
    url: `mqtt://127.0.0.1:${gw.ports.mqtt}`,
    qos: 1,
    perDeviceCredentials: false,
    ...o,
  });

  it('should take every Tasmota publish of --profile tasmota as a power-plug reading at its Time', async () => {
    const o = sim({ profile: 'tasmota' });
    const s = await runProfile(o);
    expect(s.readings).toBe(15);
    await eventually(() => scrape(gw.ports.http), (m) => sample(m, 'pulsegate_readings_received_total', { kind: 'power-plug' }) === 15);
    const rows = await waitForValue(() => query<ReadingRow>(gw, 'readings', `kind=power-plug&device=tasmota-2&from=${o.startTs}&to=${o.startTs + 5000}`), (r) => r.length === 5);
    expect(rows.map((r) => r.ts)).toEqual([0, 1, 2, 3, 4].map((i) => o.startTs + i * 1000));
  });

  it('should count each repeat of --profile zigbee2mqtt --repeat as a content duplicate, not a reading', async () => {
    const s = await runProfile(sim({ profile: 'zigbee2mqtt', repeat: 0.4 }));
    expect(s.repeats).toBeGreaterThan(0);
    const m = await eventually(() => scrape(gw.ports.http), (x) => sample(x, 'pulsegate_readings_received_total', { kind: 'climate' }) === s.readings);
    expect(sample(m, 'pulsegate_content_duplicates_total')).toBe(s.repeats);
  });
});
