import { rmSync } from 'node:fs';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createEmbeddedSink } from '../../../gateway/sinks/embedded-sink.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { sample, scrape } from '../../helpers/metrics.js';

/**
 * Through a real gateway (real MQTT client, QoS 1, embedded store, schema defaults: 10 s and
 * 1 min windows, 30 s allowed lateness, 5 s watermark skew): the bug report, replayed as a
 * device would send it.
 */
let gw: TestGateway | null = null;
afterAll(async () => {
  if (gw !== null) await gw.dispose();
});

describe('window watermark (real gateway)', () => {
  it('one reading 290 s in the future should not make the device next 30 on-time readings late: all 31 are in the stored windows', async () => {
    gw = await startTestGateway({ sinks: { flushIntervalMs: 200 } });
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const now = Date.now();
    // On-time readings at 5 Hz of event time, a few seconds behind the clock (no sleeping).
    const t0 = now - 10_000;
    const outlierTs = now + 290_000; // accepted: inside ingest.maxFutureSkewMs (5 min)
    let seq = 0;
    try {
      await client.publishAsync('sensors/heart-rate/runner', JSON.stringify({ seq: ++seq, ts: outlierTs, bpm: 199 }), { qos: 1 });
      for (let i = 0; i < 30; i++) {
        await client.publishAsync('sensors/heart-rate/runner', JSON.stringify({ seq: ++seq, ts: t0 + i * 200, bpm: 100 + i }), { qos: 1 });
      }
    } finally {
      await client.endAsync();
    }
    const metrics = await scrape(gw.ports.http);
    expect(sample(metrics, 'pulsegate_late_readings_dropped_total')).toBe(0);
    expect(sample(metrics, 'pulsegate_window_future_readings_total')).toBe(1);
    await gw.close(); // emits every open window and drains the outbox into the store
    const dataDir = gw.dataDir;
    const sinkConfig = gw.config.sinks;
    gw = null;

    const sink = createEmbeddedSink({ config: sinkConfig, kinds: createKindRegistry() });
    await sink.start();
    try {
      const windows = await sink.queryWindows({ kind: 'heart-rate', deviceId: 'runner', from: 0, to: now + 86_400_000, limit: 10_000 });
      for (const size of [10_000, 60_000]) {
        const ofSize = windows.filter((w) => w.sizeMs === size);
        expect(ofSize.reduce((n, w) => n + (w.values['bpm_count'] ?? 0), 0), `${size} ms windows`).toBe(31);
        const outlierWindow = ofSize.find((w) => w.start <= outlierTs && outlierTs < w.end);
        expect(outlierWindow?.values['bpm_max']).toBe(199);
      }
    } finally {
      await sink.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
