import { loadConfig } from '../../../gateway/config/load-config.js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SinksConfig } from '../../../gateway/config/config.js';
import { isGatewayError } from '../../../gateway/errors.js';
import { createHttpServer } from '../../../gateway/http/http-server.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createInfluxSink } from '../../../gateway/sinks/influx-sink.js';
import type { Sink, SinkBatch } from '../../../gateway/sinks/types.js';
import { startInfluxd, type InfluxdHandle } from '../../helpers/influxd.js';
import { baseSinksConfig, BASE_TS, heartRateReading, heartRateWindow, runSinkContract } from './sink-contract.js';

let influxd: InfluxdHandle;
let n = 0;

beforeAll(async () => {
  influxd = await startInfluxd();
});
afterAll(async () => {
  await influxd?.stop();
});

/** Every sink gets its own database, so tests share one influxd without seeing each other's points. */
function influxConfig(overrides: Partial<SinksConfig> = {}): SinksConfig {
  return baseSinksConfig({ influxUrl: `${influxd.url}/pulsegate_test_${++n}`, ...overrides });
}

runSinkContract({
  name: 'influx',
  async create(overrides) {
    return createInfluxSink({ config: influxConfig(overrides), kinds: createKindRegistry(), requestTimeoutMs: 5000 });
  },
});

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

const one = (ts: number, seq: number): SinkBatch => ({ readings: [heartRateReading('athlete-1', seq, ts, 70)], windows: [heartRateWindow('athlete-1', BASE_TS, 10_000, [70])], health: [] });

describe('influx sink', () => {
  it('should create the database and the raw and windows retention policies on start', async () => {
    const config = influxConfig({ rawRetention: '2d', windowRetention: '52w' });
    const sink = createInfluxSink({ config, kinds: createKindRegistry() });
    await sink.start();
    await sink.start();
    const db = new URL(config.influxUrl!).pathname.slice(1);
    const res = await fetch(`${influxd.url}/query?q=${encodeURIComponent(`SHOW RETENTION POLICIES ON "${db}"`)}`);
    const body = (await res.json()) as { results: Array<{ series: Array<{ values: unknown[][] }> }> };
    const rps = body.results[0]!.series[0]!.values.map((v) => [v[0], v[1], v[4]]);
    expect(rps).toEqual(expect.arrayContaining([['raw', '48h0m0s', false], ['windows', '8736h0m0s', true]]));
    await sink.close();
  });

  it('should reject with a retryable GW_ERR_SINK_UNAVAILABLE while InfluxDB is down, and write after it is back', async () => {
    const sink: Sink = createInfluxSink({ config: influxConfig(), kinds: createKindRegistry(), requestTimeoutMs: 2000 });
    await sink.start();
    await sink.write(one(BASE_TS, 1));
    await influxd.kill();
    try {
      const err = await failure(sink.write(one(BASE_TS + 200, 2)));
      expect(isGatewayError(err, 'GW_ERR_SINK_UNAVAILABLE')).toBe(true);
      expect((err as { retryable: boolean }).retryable).toBe(true);
      const queryErr = await failure(sink.queryReadings({ kind: 'heart-rate', from: 0, to: Date.now(), limit: 10 }));
      expect(isGatewayError(queryErr, 'GW_ERR_SINK_UNAVAILABLE')).toBe(true);
    } finally {
      await influxd.restart();
    }
    // The same client recovers at once: no host is left disabled in a backoff of its own.
    await sink.write(one(BASE_TS + 200, 2));
    const readings = await sink.queryReadings({ kind: 'heart-rate', from: 0, to: Date.now(), limit: 10 });
    expect(readings.map((r) => r.seq)).toEqual([1, 2]);
    await sink.close();
  });

  it('should report start() against an unreachable InfluxDB as retryable, and set up the schema on the first write', async () => {
    const sink = createInfluxSink({ config: influxConfig(), kinds: createKindRegistry(), requestTimeoutMs: 2000 });
    await influxd.kill();
    try {
      const err = await failure(sink.start());
      expect(isGatewayError(err, 'GW_ERR_SINK_UNAVAILABLE')).toBe(true);
    } finally {
      await influxd.restart();
    }
    await sink.write(one(BASE_TS, 1));
    expect(await sink.queryReadings({ kind: 'heart-rate', from: 0, to: Date.now(), limit: 10 })).toHaveLength(1);
    await sink.close();
  });

  it('should create the database again when it was dropped while the sink ran', async () => {
    const config = influxConfig();
    const sink = createInfluxSink({ config, kinds: createKindRegistry() });
    await sink.start();
    await sink.write(one(BASE_TS, 1));
    const db = new URL(config.influxUrl!).pathname.slice(1);
    const drop = await fetch(`${influxd.url}/query?q=${encodeURIComponent(`DROP DATABASE "${db}"`)}`, { method: 'POST' });
    expect(drop.status).toBe(200);
    // InfluxDB 1.x removes a dropped database's shards in the background; a write re-creating it
    // at once can land in a shard being deleted. An operator's DROP is not that quick in real life.
    // A fixed wait, because nothing observable marks the end: SHOW SHARDS and the data directory
    // are already clean when the DROP answers.
    await new Promise((r) => setTimeout(r, 1000));
    await sink.write(one(BASE_TS + 200, 2));
    expect((await sink.queryReadings({ kind: 'heart-rate', from: 0, to: Date.now(), limit: 10 })).map((r) => r.seq)).toEqual([2]);
    expect(await sink.queryWindows({ kind: 'heart-rate', from: 0, to: Date.now(), limit: 10 })).toHaveLength(1);
    await sink.close();
  });

  it('should reject a field type conflict as a non-retryable GW_ERR_SINK_WRITE', async () => {
    const sink = createInfluxSink({ config: influxConfig(), kinds: createKindRegistry() });
    await sink.start();
    await sink.write(one(BASE_TS, 1));
    const bad: SinkBatch = { readings: [{ kind: 'heart-rate', deviceId: 'athlete-1', seq: 2, ts: BASE_TS + 1, values: { bpm: 'fast' } }], windows: [], health: [] };
    const err = await failure(sink.write(bad));
    expect(isGatewayError(err, 'GW_ERR_SINK_WRITE')).toBe(true);
    expect((err as { retryable: boolean }).retryable).toBe(false);
    expect((err as { details?: { status?: number } }).details?.status).toBe(400);
    await sink.close();
  });

  it('a failing query was reported as GW_ERR_SINK_WRITE: it rejects with a non-retryable GW_ERR_SINK_QUERY', async () => {
    const sink = createInfluxSink({ config: influxConfig(), kinds: createKindRegistry() });
    await sink.start();
    await sink.write(one(BASE_TS, 1));
    // InfluxDB answers 400 to a statement it cannot parse (here a LIMIT of 1e+21)...
    const refused = await failure(sink.queryReadings({ kind: 'heart-rate', from: 0, to: Date.now(), limit: 1e21 }));
    expect(isGatewayError(refused, 'GW_ERR_SINK_QUERY'), String(refused)).toBe(true);
    expect((refused as { retryable: boolean }).retryable).toBe(false);
    expect((refused as { details?: { status?: number } }).details?.status).toBe(400);
    await sink.close();
    // ...and 200 with an error in the result for a database that does not exist (a sink that
    // never started has not created its own).
    const unstarted = createInfluxSink({ config: influxConfig(), kinds: createKindRegistry() });
    // One query at a time: a second promise made up front rejects before anything awaits it.
    for (const query of [
      () => unstarted.queryReadings({ kind: 'heart-rate', from: 0, to: Date.now(), limit: 10 }),
      () => unstarted.queryWindows({ kind: 'heart-rate', from: 0, to: Date.now(), limit: 10 }),
    ]) {
      const err = await failure(query());
      expect(isGatewayError(err, 'GW_ERR_SINK_QUERY'), String(err)).toBe(true);
      expect((err as Error).message).toContain('database not found');
    }
    await unstarted.close();
  });

  it('GET /v1/readings with to=9999999999999 answered 500 GW_ERR_SINK_WRITE on InfluxDB: it answers 200 with the readings', async () => {
    const kinds = createKindRegistry();
    const sink = createInfluxSink({ config: influxConfig(), kinds });
    await sink.start();
    await sink.write(one(BASE_TS, 1));
    const http = createHttpServer({
      config: { ...loadConfig({ env: {} }).http, host: '127.0.0.1', port: 0 },
      registry: new Registry(),
      kinds,
      sink,
      logger: pino({ level: 'silent' }),
      notReadyReason: () => null,
    });
    try {
      const port = await http.start();
      for (const route of ['readings', 'windows']) {
        for (const to of ['9999999999999', '99999999999999999999', 'now']) {
          const res = await fetch(`http://127.0.0.1:${port}/v1/${route}?kind=heart-rate&from=${BASE_TS}&to=${to}`);
          const body = (await res.json()) as { count?: number; error?: string };
          expect(res.status, `${route} to=${to}: ${JSON.stringify(body)}`).toBe(200);
          expect(body.count).toBe(1);
        }
      }
    } finally {
      await http.close();
      await sink.close();
    }
  });

  it('should treat raw readings older than the retention policy as written', async () => {
    const sink = createInfluxSink({ config: influxConfig({ rawRetention: '1d' }), kinds: createKindRegistry() });
    await sink.start();
    const old = Date.now() - 3 * 86_400_000;
    await sink.write({ readings: [heartRateReading('athlete-1', 1, old, 70), heartRateReading('athlete-1', 2, BASE_TS, 71)], windows: [], health: [] });
    expect((await sink.queryReadings({ kind: 'heart-rate', from: 0, to: Date.now(), limit: 10 })).map((r) => r.seq)).toEqual([2]);
    await sink.close();
  });

  it('should store raw readings at sub-millisecond offsets taken from seq', async () => {
    const config = influxConfig();
    const sink = createInfluxSink({ config, kinds: createKindRegistry() });
    await sink.start();
    await sink.write({ readings: [heartRateReading('athlete-1', 1234, BASE_TS, 70)], windows: [], health: [] });
    const db = new URL(config.influxUrl!).pathname.slice(1);
    const res = await fetch(`${influxd.url}/query?db=${db}&epoch=u&q=${encodeURIComponent('SELECT bpm, seq FROM "raw"."heart_rate"')}`);
    const body = (await res.json()) as { results: Array<{ series: Array<{ values: unknown[][] }> }> };
    expect(body.results[0]!.series[0]!.values).toEqual([[BASE_TS * 1000 + 234, 70, 1234]]);
    await sink.close();
  });
});
