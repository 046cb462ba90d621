import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { AlertEvent } from '../../gateway/wire/alert.js';
import { publishSeries, spikeSeries } from '../helpers/alert-traffic.js';
import { startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import type { ChildGateway } from '../helpers/child-gateway.js';
import { eventually, sample, scrape } from '../helpers/metrics.js';

/**
 * Alert transitions in the store survive kill -9 without a second row: after the restart, the
 * replay tells the logged transitions again (`logged`), the store's batches carry them again, and
 * each lands on its own row (id, state) with the offset of its first record. (The rows are spoiled
 * while the gateway is down, so the test sees that they were written again.)
 */
const dataDir = mkdtempSync(join(tmpdir(), 'pg-alert-store-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

// No checkpoint during the test: the restart replays the whole log, alerts included.
const config = { log: { checkpointIntervalMs: 3_600_000 }, sinks: { flushIntervalMs: 50 } };

async function history(gw: ChildGateway, from: number): Promise<AlertEvent[]> {
  const res = await fetch(`http://127.0.0.1:${gw.ports.http}/v1/alerts/history?from=${from}&rule=heart-rate-spike`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { alerts: AlertEvent[] }).alerts;
}

async function kill9(gw: ChildGateway): Promise<void> {
  gw.child.kill('SIGKILL');
  await gw.exited;
}

describe('alerts in the store across kill -9', () => {
  it('should hold each FIRING and RESOLVED once, with its first offset, after the replay told them again', async () => {
    const series = spikeSeries(Date.now() - 600_000);
    let gw = await startChildGatewayWithConfig(dataDir, config);
    let before: AlertEvent[];
    try {
      for (const device of ['athlete-1', 'athlete-2']) await publishSeries(gw.ports.mqtt, device, series);
      before = await eventually(() => history(gw, series.episodeStart), (h) => h.length === 4, 20_000);
    } finally {
      await kill9(gw);
    }
    expect(before.map((a) => [a.deviceId, a.state])).toEqual([
      ['athlete-1', 'FIRING'],
      ['athlete-2', 'FIRING'],
      ['athlete-1', 'RESOLVED'],
      ['athlete-2', 'RESOLVED'],
    ]);

    // While the gateway is down, the rows are spoiled: only a write of the transitions again mends them.
    const store = new Database(join(dataDir, 'store.sqlite'));
    expect(store.prepare(`UPDATE alerts SET summary = 'spoiled', "offset" = -5`).run().changes).toBe(4);
    store.close();

    gw = await startChildGatewayWithConfig(dataDir, config);
    try {
      // The replay told the four again (the engine counts them), and they were written once more.
      const metrics = await eventually(
        () => scrape(gw.ports.http),
        (m) =>
          sample(m, 'pulsegate_alert_transitions_total', { rule: 'heart-rate-spike', state: 'FIRING' }) === 2 &&
          sample(m, 'pulsegate_alert_transitions_total', { rule: 'heart-rate-spike', state: 'RESOLVED' }) === 2 &&
          sample(m, 'pulsegate_sink_points_written_total', { sink: 'embedded' }) > 0 &&
          sample(m, 'pulsegate_sink_pending_batches') === 0,
        20_000,
      );
      expect(sample(metrics, 'pulsegate_sink_points_written_total', { sink: 'embedded' })).toBeGreaterThanOrEqual(4);
      const after = await history(gw, series.episodeStart);
      expect(after).toEqual(before);
      expect(new Set(after.map((a) => `${a.id}:${a.state}`)).size).toBe(4);
    } finally {
      await kill9(gw);
    }
  });
});
