import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { createFaultyFiles, type FaultyFiles } from '../../helpers/faulty-file.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { observe, waitFor } from '../../helpers/wait.js';

let gw: TestGateway | null = null;
let client: MqttClient | null = null;
let faults: FaultyFiles | null = null;
afterEach(async () => {
  faults?.heal();
  await client?.endAsync(true);
  await gw?.dispose();
  gw = null;
  client = null;
  faults = null;
});

async function start(): Promise<{ gw: TestGateway; client: MqttClient; faults: FaultyFiles }> {
  faults = createFaultyFiles();
  gw = await startTestGateway({ logLevel: 'fatal' }, undefined, { openLogFile: faults.openFile });
  client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
  return { gw, client, faults };
}

describe('QoS 1 PUBACK and the log fdatasync (real gateway, real mqtt.js client)', () => {
  it('PUBACK sent before the fdatasync of the reading: with the fdatasync held, no PUBACK; released, the PUBACK follows', async () => {
    const { client, faults } = await start();
    faults.stallDatasyncs();
    let acked = false;
    const publish = client.publishAsync('sensors/heart-rate/pa1', JSON.stringify({ seq: 1, ts: Date.now(), bpm: 70 }), { qos: 1 }).then(() => {
      acked = true;
    });
    await waitFor(() => faults.stalled >= 1, { timeoutMs: 5000, what: "the log's fdatasync of the publish" });
    // Bounded observation window: for 300 ms with the fdatasync held, no PUBACK arrives.
    await observe(300);
    expect(acked).toBe(false);
    const syncsBefore = faults.datasyncs;
    faults.release();
    await publish;
    expect(acked).toBe(true);
    expect(faults.datasyncs).toBeGreaterThan(syncsBefore);
  });

  it('PUBACK sent for a reading whose fdatasync failed: the publish gets no PUBACK and the connection is closed', async () => {
    const { client, faults } = await start();
    faults.failDatasyncs('EIO');
    let acked = false;
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish('sensors/heart-rate/pa2', JSON.stringify({ seq: 1, ts: Date.now(), bpm: 71 }), { qos: 1 }, (err) => {
      if (!err) acked = true;
    });
    await closed;
    expect(acked).toBe(false);
    expect(faults.injected).toBeGreaterThanOrEqual(1);
  });
});
