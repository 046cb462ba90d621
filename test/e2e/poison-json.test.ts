import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';
import { eventually, sample, scrape } from '../helpers/metrics.js';

describe('poison JSON against the CLI gateway', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pg-poison-'));
  let gw: ChildGateway | undefined;
  afterAll(async () => {
    if (gw !== undefined && gw.child.exitCode === null) {
      gw.child.kill('SIGTERM');
      await gw.exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('poison JSON crash loop: {"bpm":{"toNumber":1}} from a clean:false client is acked, counted invalid, dead-lettered, and the process lives through every resend', async () => {
    gw = await startChildGateway(dataDir);
    const exited = gw.exited.then((code) => {
      throw new Error(`gateway exited with ${code}:\n${gw!.output.slice(-20).join('\n')}`);
    });
    exited.catch(() => undefined);
    const alive = <T>(p: Promise<T>): Promise<T> => Promise.race([p, exited]);
    const poison = JSON.stringify({ seq: 1, ts: Date.now(), bpm: { toNumber: 1 } });
    // A persistent session resends an unacknowledged QoS 1 publish on every reconnect: three
    // sessions in a row are what crash-looped the gateway.
    for (let round = 0; round < 3; round++) {
      const client = await alive(mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: 'poisoner', clean: false, connectTimeout: 5000 }));
      await alive(client.publishAsync('sensors/heart-rate/poisoner', poison, { qos: 1 }));
      // The connection stays up: a good reading on it is accepted.
      await alive(client.publishAsync('sensors/heart-rate/poisoner', JSON.stringify({ seq: 2 + round, ts: Date.now(), bpm: 70 }), { qos: 1 }));
      expect(client.connected).toBe(true);
      await client.endAsync();
    }
    const metrics = await eventually(() => scrape(gw!.ports.http), (t) => sample(t, 'pulsegate_readings_received_total', { kind: 'heart-rate' }) === 3);
    expect(sample(metrics, 'pulsegate_readings_rejected_total', { reason: 'invalid' })).toBe(3);
    expect(sample(metrics, 'pulsegate_readings_rejected_total', { reason: 'internal_error' })).toBe(0);
    expect(gw.child.exitCode).toBeNull();
    expect(gw.output.some((l) => l.includes('is not a function'))).toBe(false);
  });
});
