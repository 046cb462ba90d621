import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { GatewayEvents } from '../../gateway/events.js';
import { SparkplugEdgeNode } from '../../simulators/sparkplug.js';
import { startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import { startTestGateway } from '../helpers/gateway.js';
import { sample, scrape } from '../helpers/metrics.js';
import { waitForValue } from '../helpers/wait.js';

const dataDir = mkdtempSync(join(tmpdir(), 'pg-sp-crash-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('Sparkplug B across kill -9', () => {
  it('a death logged before kill -9 is replayed as a device.status event (replay=true), and the readings once each', async () => {
    // No checkpoint before the kill: recovery replays the whole log.
    const config = { ingest: { sparkplug: { enabled: true } }, log: { checkpointIntervalMs: 600_000 }, sinks: { flushIntervalMs: 50 } };
    const child = await startChildGatewayWithConfig(dataDir, config);
    const node = new SparkplugEdgeNode({ url: `mqtt://127.0.0.1:${child.ports.mqtt}`, group: 'site', edge: 'edgeK', devices: ['a', 'b'], seed: 11 });
    try {
      await node.start();
      for (let i = 0; i < 20; i++) for (const d of ['a', 'b']) await node.data(d);
      await node.deviceDeath('a');
      // A later record durable means the DDEATH's status record before it is too (the log commits in order).
      await node.data('b');
      await waitForValue(() => scrape(child.ports.http).then((t) => sample(t, 'pulsegate_readings_received_total', { kind: 'heart-rate' })), (v) => v === 2 + 41, { what: 'all readings durable' });
    } finally {
      node.die();
      child.child.kill('SIGKILL');
      await child.exited;
    }

    const events: GatewayEvents['device.status'][] = [];
    const gw = await startTestGateway(config, dataDir, { observeEvents: (bus) => bus.on('device.status', (e) => events.push(e)) });
    try {
      expect(events.map((e) => [e.deviceId, e.status, e.reason, e.replay])).toEqual([
        ['site:edgeK', 'online', 'sparkplug-birth', true],
        ['site:edgeK:a', 'online', 'sparkplug-birth', true],
        ['site:edgeK:b', 'online', 'sparkplug-birth', true],
        ['site:edgeK:a', 'offline', 'sparkplug-death', true],
      ]);
      const count = async (device: string): Promise<number> =>
        ((await (await fetch(`http://127.0.0.1:${gw.ports.http}/v1/readings?kind=heart-rate&device=${device}&from=0&to=9999999999999&limit=10000`)).json()) as { count: number }).count;
      await waitForValue(() => Promise.all([count('site:edgeK:a'), count('site:edgeK:b')]), ([a, b]) => a === 21 && b === 22, { what: 'readings of a and b once each' });
      expect(sample(await scrape(gw.ports.http), 'pulsegate_readings_duplicate_total')).toBe(0);
    } finally {
      await gw.close();
    }
  });
});
