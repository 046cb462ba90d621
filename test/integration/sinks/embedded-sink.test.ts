import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isGatewayError } from '../../../gateway/errors.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createEmbeddedSink } from '../../../gateway/sinks/embedded-sink.js';
import { baseSinksConfig, BASE_TS, heartRateReading, heartRateWindow, runSinkContract } from './sink-contract.js';

let dir = '';
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pulsegate-embedded-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

runSinkContract({
  name: 'embedded',
  async create(overrides) {
    return createEmbeddedSink({ config: baseSinksConfig({ embeddedPath: join(dir, `store-${++n}.sqlite`), ...overrides }), kinds: createKindRegistry() });
  },
});

describe('embedded sink', () => {
  it('should keep what it acknowledged across a reopen of the file', async () => {
    const config = baseSinksConfig({ embeddedPath: join(dir, 'nested', 'reopen.sqlite') });
    const first = createEmbeddedSink({ config, kinds: createKindRegistry() });
    await first.start();
    const reading = heartRateReading('athlete-1', 1, BASE_TS, 70);
    await first.write({ readings: [reading], windows: [], health: [] });
    await first.close();
    const second = createEmbeddedSink({ config, kinds: createKindRegistry() });
    await second.start();
    expect(await second.queryReadings({ kind: 'heart-rate', from: 0, to: BASE_TS + 1, limit: 10 })).toEqual([reading]);
    await second.close();
  });

  it('a failing query was reported as GW_ERR_SINK_WRITE: it rejects with a non-retryable GW_ERR_SINK_QUERY', async () => {
    const path = join(dir, 'query-failure.sqlite');
    const sink = createEmbeddedSink({ config: baseSinksConfig({ embeddedPath: path }), kinds: createKindRegistry() });
    await sink.start();
    await sink.write({ readings: [heartRateReading('athlete-1', 1, BASE_TS, 70)], windows: [heartRateWindow('athlete-1', BASE_TS, 10_000, [70])], health: [] });
    // Another process breaks the file under the running store.
    const other = new Database(path);
    other.exec('DROP TABLE readings; DROP TABLE windows;');
    other.close();
    for (const query of [
      sink.queryReadings({ kind: 'heart-rate', from: 0, to: BASE_TS + 1, limit: 10 }),
      sink.queryWindows({ kind: 'heart-rate', from: 0, to: BASE_TS + 1, limit: 10 }),
    ]) {
      const err = await query.then(
        () => null,
        (e: unknown) => e,
      );
      expect(isGatewayError(err, 'GW_ERR_SINK_QUERY'), String(err)).toBe(true);
      expect((err as { retryable: boolean }).retryable).toBe(false);
    }
    await sink.close();
  });

  it('should delete rows older than their retention', async () => {
    const sink = createEmbeddedSink({ config: baseSinksConfig({ embeddedPath: join(dir, 'retention.sqlite'), rawRetention: '1h', windowRetention: '1d' }), kinds: createKindRegistry() });
    await sink.start();
    const now = BASE_TS + 2 * 3_600_000;
    await sink.write({
      readings: [heartRateReading('a', 1, now - 7_200_000, 70), heartRateReading('a', 2, now - 60_000, 71)],
      windows: [heartRateWindow('a', now - 2 * 86_400_000, 10_000, [70]), heartRateWindow('a', now - 7_200_000, 10_000, [70])],
      health: [{ ts: now - 2 * 86_400_000, values: { heap_mb: 1 } }],
    });
    expect(sink.applyRetention(now)).toEqual({ readings: 1, windows: 1, health: 1, alerts: 0 });
    expect((await sink.queryReadings({ kind: 'heart-rate', from: 0, to: now, limit: 10 })).map((r) => r.seq)).toEqual([2]);
    expect(await sink.queryWindows({ kind: 'heart-rate', from: 0, to: now, limit: 10 })).toHaveLength(1);
    await sink.close();
  });
});
