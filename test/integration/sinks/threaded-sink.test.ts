import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isGatewayError } from '../../../gateway/errors.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { encodeBatch } from '../../../gateway/sinks/batch-codec.js';
import { createPayloadEncoder } from '../../../simulators/payload-encoder.js';
import { createSinkMetrics } from '../../../gateway/sinks/sink-metrics.js';
import { createThreadedSink } from '../../../gateway/sinks/sink-thread.js';
import { baseSinksConfig, BASE_TS, heartRateReading, heartRateWindow, runSinkContract } from './sink-contract.js';

let dir = '';
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pulsegate-threaded-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const silent = pino({ level: 'silent' });

/** A logger whose lines are kept, parsed. */
function capturingLogger(): { lines: Record<string, unknown>[]; logger: pino.Logger } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        cb();
      },
    }),
  );
  return { lines, logger };
}

runSinkContract({
  name: 'embedded on the sink thread',
  async create(overrides) {
    return createThreadedSink({ config: baseSinksConfig({ embeddedPath: join(dir, `store-${++n}.sqlite`), ...overrides }), kinds: createKindRegistry(), logger: silent });
  },
});

describe('sink thread', () => {
  it("should record the thread's writes in the gateway's registry and relay its log lines", async () => {
    const { lines, logger } = capturingLogger();
    const registry = new Registry();
    const path = join(dir, 'metrics.sqlite');
    const sink = createThreadedSink({ config: baseSinksConfig({ embeddedPath: path }), kinds: createKindRegistry(), logger, metrics: createSinkMetrics(registry) });
    await sink.start();
    await sink.write({ readings: [heartRateReading('a', 1, BASE_TS, 70), heartRateReading('a', 2, BASE_TS + 200, 71)], windows: [], health: [] });
    await sink.close();
    expect(await registry.metrics()).toContain('pulsegate_sink_points_written_total{sink="embedded"} 2');
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'embedded store ready', path, level: 30 }));
  });

  it('should decode a batch holding payloads on the thread, and count and tell a payload that decodes to other readings than batched', async () => {
    const { lines, logger } = capturingLogger();
    const registry = new Registry();
    const sink = createThreadedSink({ config: baseSinksConfig({ embeddedPath: join(dir, 'payloads.sqlite') }), kinds: createKindRegistry(), logger, metrics: createSinkMetrics(registry) });
    await sink.start();
    const hr = createPayloadEncoder('heart-rate', 'protobuf');
    const receivedAt = BASE_TS + 60_000;
    const payload = (device: string) => ({ topic: `sensors/heart-rate/${device}`, receivedAt, payload: hr.encodeBatch(Array.from({ length: 10 }, (_, i) => ({ seq: i + 1, ts: BASE_TS + i * 200, bpm: 60 + i }))) });
    // "ok" as batched (10 readings); "off" says 12: as if its kind had changed while it waited.
    await sink.writeEncoded(
      encodeBatch({
        readings: [heartRateReading('single', 1, BASE_TS, 70), { ...payload('ok'), count: 10 }, { ...payload('off'), count: 12 }],
        windows: [],
        health: [],
        payloadLimits: { maxPastAgeMs: 7 * 86_400_000, maxFutureSkewMs: 300_000 },
      }),
    );
    const stored = await sink.queryReadings({ kind: 'heart-rate', from: 0, to: BASE_TS + 3_600_000, limit: 100 });
    await sink.close();
    const seqs = (device: string) => stored.filter((r) => r.deviceId === device).map((r) => r.seq).sort((x, y) => x - y);
    expect(seqs('single')).toEqual([1]);
    expect(seqs('ok')).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(seqs('off')).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(stored.find((r) => r.deviceId === 'ok' && r.seq === 3)!.values).toEqual({ bpm: 62 });
    expect(await registry.metrics()).toContain('pulsegate_sink_payload_mismatches_total 1');
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, topic: 'sensors/heart-rate/off', batched: 12, decoded: 10 }));
  });

  it('should refuse for good, and serve no store, when the payload reader of its entry cannot be built', async () => {
    const sink = createThreadedSink({
      config: baseSinksConfig({ embeddedPath: join(dir, 'no-reader.sqlite') }),
      kinds: createKindRegistry(),
      logger: silent,
      entry: new URL('./failing-payload-reader-entry.js', import.meta.url),
    });
    const err = await sink.start().then(
      () => null,
      (e: unknown) => e,
    );
    expect(isGatewayError(err) && err.code).toBe('GW_ERR_CONFIG_INVALID');
    expect((err as Error).message).toContain('no payload reader here');
    await expect(sink.write({ readings: [heartRateReading('a', 1, BASE_TS, 70)], windows: [], health: [] })).rejects.toMatchObject({ code: 'GW_ERR_CONFIG_INVALID' });
    await sink.close();
  });

  it('should age out rows on the sink thread and answer null for a store without its own retention', async () => {
    const sink = createThreadedSink({
      config: baseSinksConfig({ embeddedPath: join(dir, 'retention.sqlite'), rawRetention: '1h', windowRetention: '1d' }),
      kinds: createKindRegistry(),
      logger: silent,
    });
    await sink.start();
    const now = BASE_TS + 2 * 3_600_000;
    await sink.write({
      readings: [heartRateReading('a', 1, now - 7_200_000, 70), heartRateReading('a', 2, now - 60_000, 71)],
      windows: [heartRateWindow('a', now - 2 * 86_400_000, 10_000, [70]), heartRateWindow('a', now - 7_200_000, 10_000, [70])],
      health: [{ ts: now - 2 * 86_400_000, values: { heap_mb: 1 } }],
    });
    expect(await sink.applyRetention(now)).toEqual({ readings: 1, windows: 1, health: 1, alerts: 0 });
    expect((await sink.queryReadings({ kind: 'heart-rate', from: 0, to: now, limit: 10 })).map((r) => r.seq)).toEqual([2]);
    await sink.close();

    const influx = createThreadedSink({ config: baseSinksConfig({ influxUrl: 'http://127.0.0.1:1/pulsegate' }), kinds: createKindRegistry(), logger: silent });
    expect(influx.name).toBe('influx');
    expect(await influx.applyRetention(now)).toBeNull();
    await influx.close();
  });

  it('should refuse for good, not restart forever, when the store cannot even be built', async () => {
    const sink = createThreadedSink({ config: baseSinksConfig({ influxUrl: 'http://a b/pulsegate' }), kinds: createKindRegistry(), logger: silent });
    for (const attempt of [() => sink.start(), () => sink.write({ readings: [heartRateReading('a', 1, BASE_TS, 70)], windows: [], health: [] })]) {
      const err = await attempt().then(
        () => null,
        (e: unknown) => e,
      );
      expect(isGatewayError(err, 'GW_ERR_CONFIG_INVALID')).toBe(true);
      expect((err as { retryable: boolean }).retryable).toBe(false);
      expect((err as Error).message).toContain('sinks:');
    }
    await sink.close();
  });

  it('should write several encoded batches as one write, all or none: one unknown kind, or one row SQLite refuses, stores none of them', async () => {
    const registry = new Registry();
    const path = join(dir, 'many.sqlite');
    const sink = createThreadedSink({ config: baseSinksConfig({ embeddedPath: path }), kinds: createKindRegistry(), logger: silent, metrics: createSinkMetrics(registry) });
    await sink.start();
    const batchOf = (device: string, from: number): Buffer =>
      encodeBatch({ readings: [0, 1, 2].map((i) => heartRateReading(device, from + i, BASE_TS + (from + i) * 200, 60 + i)), windows: [], health: [] });
    const all = async (): Promise<unknown[]> => sink.queryReadings({ kind: 'heart-rate', from: 0, to: BASE_TS + 100_000, limit: 100 });

    const bad = encodeBatch({ readings: [{ ...heartRateReading('m', 9, BASE_TS, 1), kind: 'no-such-kind' }], windows: [], health: [] });
    const err = await sink.writeEncodedMany([batchOf('m', 0), bad, batchOf('m', 3)]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isGatewayError(err, 'GW_ERR_SINK_WRITE'), String(err)).toBe(true);
    expect((err as { retryable: boolean }).retryable).toBe(false);
    expect(await all()).toEqual([]);

    // A row refused inside the transaction (a trigger put in by another connection), in the second batch of three.
    const other = new Database(path);
    other.exec(`CREATE TRIGGER refuse_x BEFORE INSERT ON readings WHEN NEW.device = 'x' BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END;`);
    const inTx = await sink.writeEncodedMany([batchOf('m', 0), batchOf('x', 0), batchOf('m', 3)]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(String(inTx)).toContain('refused by trigger');
    expect(await all()).toEqual([]);
    other.exec('DROP TRIGGER refuse_x');
    other.close();

    // The caller's buffers are copied, not moved: they stay usable.
    const parts = [batchOf('m', 0), batchOf('m', 3), batchOf('n', 0)];
    await sink.writeEncodedMany(parts);
    expect(parts.every((p) => p.length > 0)).toBe(true);
    const rows = (await all()) as { deviceId: string; seq: number }[];
    expect(rows.map((r) => `${r.deviceId}:${r.seq}`).sort()).toEqual(['m:0', 'm:1', 'm:2', 'm:3', 'm:4', 'm:5', 'n:0', 'n:1', 'n:2']);
    await sink.close();
    const text = await registry.metrics();
    // One write of 9 points (and the two refused ones).
    expect(text).toContain('pulsegate_sink_points_written_total{sink="embedded"} 9');
    expect(text).toMatch(/pulsegate_sink_batch_seconds_count\{sink="embedded",outcome="ok"\} 1\n/);
    expect(text).toMatch(/pulsegate_sink_batch_seconds_count\{sink="embedded",outcome="error"\} 2\n/);
  });

  it('should take a batch that is a view into a larger buffer without the rest of it', async () => {
    const sink = createThreadedSink({ config: baseSinksConfig({ embeddedPath: join(dir, 'view.sqlite') }), kinds: createKindRegistry(), logger: silent });
    await sink.start();
    const { encodeBatch } = await import('../../../gateway/sinks/batch-codec.js');
    const encoded = encodeBatch({ readings: [heartRateReading('v', 1, BASE_TS, 80)], windows: [], health: [] });
    const big = Buffer.alloc(encoded.length + 100, 0xff);
    encoded.copy(big, 50);
    const view = big.subarray(50, 50 + encoded.length);
    await sink.writeEncoded(view);
    expect(big[0]).toBe(0xff); // the caller's buffer is neither detached nor changed
    expect(await sink.queryReadings({ kind: 'heart-rate', from: 0, to: BASE_TS + 1, limit: 10 })).toEqual([heartRateReading('v', 1, BASE_TS, 80)]);
    await sink.close();
  });

  it('query flood starved ingest: rows are serialized on the sink thread, the same JSON the main thread would have written', async () => {
    const sink = createThreadedSink({ config: baseSinksConfig({ embeddedPath: join(dir, 'json.sqlite') }), kinds: createKindRegistry(), logger: silent });
    await sink.start();
    await sink.write({
      readings: Array.from({ length: 50 }, (_, i) => heartRateReading(`d${i % 3}`, i + 1, BASE_TS + i * 100, 60 + (i % 40))),
      windows: [heartRateWindow('d0', BASE_TS, 10_000, [60, 61, 62]), heartRateWindow('d1', BASE_TS, 10_000, [70])],
      health: [],
    });
    const rq = { kind: 'heart-rate', from: 0, to: BASE_TS + 10_000, limit: 40 };
    const readings = await sink.queryReadingsJson(rq);
    expect(readings).toEqual({ count: 40, json: JSON.stringify(await sink.queryReadings(rq)) });
    const wq = { kind: 'heart-rate', from: 0, to: BASE_TS + 20_000, limit: 10 };
    const windows = await sink.queryWindowsJson(wq);
    expect(windows).toEqual({ count: 2, json: JSON.stringify(await sink.queryWindows(wq)) });
    await sink.close();
  });
});
