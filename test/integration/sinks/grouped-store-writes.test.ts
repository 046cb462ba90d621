/**
 * A real gateway whose embedded store falls behind a burst of batched publishes: the outbox hands
 * the store several waiting batches at once (one transaction), and still every acknowledged
 * reading is stored exactly once and every store batch acknowledged once in the log.
 */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { decodeOutgoingAck } from '../../../gateway/log/outbox.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { createPayloadEncoder } from '../../../simulators/payload-encoder.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { readLogRecords } from '../../helpers/log-records.js';
import { waitForValue } from '../../helpers/wait.js';

let gw: TestGateway | null = null;
afterEach(async () => {
  await gw?.dispose();
  gw = null;
});

const DEVICES = 8;
const PUBLISHES = 50;
const PER = 100;

const metric = (text: string, line: RegExp): number => Number(line.exec(text)?.[1] ?? NaN);
const groups = (text: string, outcome: string): number =>
  metric(text, new RegExp(`^pulsegate_log_outbox_group_sends_total\\{destination="embedded",outcome="${outcome}"\\} (\\d+)$`, 'm'));

/**
 * 40,000 readings at QoS 1, all devices at once, acknowledged faster than they are stored (batches
 * of one publish each); resolves with /metrics once the store holds all of them, checked reading by reading.
 */
async function burst(g: TestGateway): Promise<string> {
  const hr = createPayloadEncoder('heart-rate', 'protobuf');
  const t0 = Date.now() - 3_600_000;
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${g.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
  try {
    await Promise.all(
      Array.from({ length: DEVICES }, async (_, d) => {
        for (let p = 0; p < PUBLISHES; p++) {
          const readings = Array.from({ length: PER }, (_, i) => {
            const seq = p * PER + i + 1;
            return { seq, ts: t0 + seq * 20, bpm: 40 + ((seq + d) % 150) };
          });
          await client.publishAsync(`sensors/heart-rate/g-${d}`, hr.encodeBatch(readings), { qos: 1 });
        }
      }),
    );
  } finally {
    await client.endAsync();
  }
  const url = `http://127.0.0.1:${g.ports.http}`;
  for (let d = 0; d < DEVICES; d++) {
    type Rows = { readings: { seq: number; values: { bpm: number } }[] };
    const res = await waitForValue(
      async () => (await (await fetch(`${url}/v1/readings?kind=heart-rate&device=g-${d}&from=0&limit=10000`)).json()) as Rows,
      (r) => r.readings.length >= PUBLISHES * PER,
      { what: `the readings of g-${d} stored`, timeoutMs: 60_000 },
    );
    const seqs = res.readings.map((r) => r.seq).sort((a, b) => a - b);
    expect(seqs.length, `device g-${d}`).toBe(PUBLISHES * PER);
    expect(seqs[0]).toBe(1);
    expect(seqs[seqs.length - 1]).toBe(PUBLISHES * PER);
    expect(new Set(seqs).size).toBe(PUBLISHES * PER);
    expect(res.readings.every((r) => r.values.bpm === 40 + ((r.seq + d) % 150))).toBe(true);
  }
  return (await fetch(`${url}/metrics`)).text();
}

describe('grouped store writes, through a real gateway', () => {
  it('should write batches waiting for a lagging store several to a transaction and store every acknowledged reading once', async () => {
    gw = await startTestGateway({ sinks: { flushIntervalMs: 50, batchMaxPoints: 100 } });
    const text = await burst(gw);
    expect(groups(text, 'delivered')).toBeGreaterThan(0);
    expect(groups(text, 'failed')).toBe(0);

    // In the log: every store batch acknowledged exactly once, as delivered.
    await gw.close();
    const records = await readLogRecords(loadConfig({ env: {}, overrides: { dataDir: gw.dataDir } }).log.dir);
    const outgoing = records.filter((r) => r.type === RECORD_TYPES.outgoing).map((r) => r.offset);
    const acks = records.filter((r) => r.type === RECORD_TYPES.outgoingAck).map((r) => decodeOutgoingAck(r.payload));
    expect(outgoing.length).toBeGreaterThanOrEqual(DEVICES * PUBLISHES);
    expect(acks.map((a) => a.offset).sort((a, b) => a - b)).toEqual(outgoing);
    expect(acks.every((a) => a.outcome === 0)).toBe(true);
  });

  it('should write one batch a transaction with sinks.maxBatchesPerWrite 1', async () => {
    gw = await startTestGateway({ sinks: { flushIntervalMs: 50, batchMaxPoints: 100, maxBatchesPerWrite: 1 } });
    const text = await burst(gw);
    expect(groups(text, 'delivered')).toBe(0);
    expect(groups(text, 'failed')).toBe(0);
  });
});
