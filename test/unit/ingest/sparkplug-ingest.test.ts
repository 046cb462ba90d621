import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createSparkplugIngest, type SparkplugOutcome } from '../../../gateway/ingest/sparkplug.js';
import { decodeSparkplugPayload, encodeSparkplugPayload } from '../../../gateway/ingest/sparkplug-payload.js';

const T0 = 1_800_000_000_000;

function setup(overrides: Partial<{ maxDevicesPerNode: number; fields: Record<string, string> }> = {}) {
  let now = T0;
  const sent: { topic: string; payload: Buffer }[] = [];
  const sp = createSparkplugIngest({
    config: { enabled: true, kind: 'heart-rate', fields: overrides.fields ?? {}, rebirthIntervalMs: 1000, maxEdgeNodes: 10, maxDevicesPerNode: overrides.maxDevicesPerNode ?? 10, hostId: null },
    ingest: { maxPastAgeMs: 86_400_000, maxFutureSkewMs: 60_000 },
    kinds: createKindRegistry(),
    clock: { now: () => now },
    registry: new Registry(),
    publish: (topic, payload) => sent.push({ topic, payload }),
  });
  const send = (topic: string, p: Parameters<typeof encodeSparkplugPayload>[0]): SparkplugOutcome => sp.handle(`spBv1.0/${topic}`, encodeSparkplugPayload(p), now, () => null);
  return { sp, sent, send, advance: (ms: number) => (now += ms) };
}

const nbirth = (bdSeq = 0) => ({ timestamp: T0, seq: 0, metrics: [{ name: 'bdSeq', type: 'UInt64', value: bdSeq }] });
const dbirth = (seq: number) => ({ timestamp: T0, seq, metrics: [{ name: 'bpm', alias: 1, type: 'Int32', value: 60 }, { name: 'rrMs', alias: 2, type: 'Int32', value: 1000 }, { name: 'temp', alias: 3, type: 'Float', value: 36.5 }] });

describe('Sparkplug B ingest state', () => {
  it('keeps the last value of every mapped field across report-by-exception data', () => {
    const { send } = setup();
    send('g/NBIRTH/e', nbirth());
    send('g/DBIRTH/e/d', dbirth(1));
    const out = send('g/DDATA/e/d', { timestamp: T0 + 10, seq: 2, metrics: [{ alias: 2, type: 'Int32', value: 900 }] });
    expect(out).toMatchObject({ readings: [{ deviceId: 'g:e:d', seq: 2, ts: T0 + 10, values: { bpm: 60, rrMs: 900 } }], rejected: [] });
    // A message of unmapped metrics only gives no reading (and no rejection).
    expect(send('g/DDATA/e/d', { timestamp: T0 + 20, seq: 3, metrics: [{ alias: 3, type: 'Float', value: 37 }] })).toEqual({ statuses: [], readings: [], rejected: [] });
  });

  it('rejects an undeclared alias and asks for a rebirth; an out-of-range value is an invalid reading', () => {
    const { send, sent } = setup();
    send('g/NBIRTH/e', nbirth());
    send('g/DBIRTH/e/d', dbirth(1));
    expect(send('g/DDATA/e/d', { timestamp: T0, seq: 2, metrics: [{ alias: 9, type: 'Int32', value: 1 }] })).toMatchObject({ reject: 'sparkplug_unknown_metric' });
    expect(sent.map((s) => s.topic)).toEqual(['spBv1.0/g/NCMD/e']);
    expect(decodeSparkplugPayload(sent[0]!.payload).metrics[0]).toMatchObject({ name: 'Node Control/Rebirth', value: true });
    expect(send('g/DDATA/e/d', { timestamp: T0, seq: 3, metrics: [{ alias: 1, type: 'Int32', value: 400 }] })).toMatchObject({ readings: [], rejected: [{ reason: 'invalid' }] });
  });

  it('ties an NDEATH to its birth by bdSeq and makes the node and its devices offline', () => {
    const { send } = setup();
    send('g/NBIRTH/e', nbirth(5));
    send('g/DBIRTH/e/d1', dbirth(1));
    send('g/DBIRTH/e/d2', dbirth(2));
    expect(send('g/NDEATH/e', { metrics: [{ name: 'bdSeq', type: 'UInt64', value: 4 }] })).toMatchObject({ reject: 'sparkplug_stale_death' });
    const out = send('g/NDEATH/e', { metrics: [{ name: 'bdSeq', type: 'UInt64', value: 5 }] });
    expect('statuses' in out && out.statuses.map((s) => [s.deviceId, s.status, s.reason])).toEqual([
      ['g:e', 'offline', 'sparkplug-death'],
      ['g:e:d1', 'offline', 'sparkplug-death'],
      ['g:e:d2', 'offline', 'sparkplug-death'],
    ]);
    // The session is gone: data now needs a new birth.
    expect(send('g/DDATA/e/d1', { timestamp: T0, seq: 3, metrics: [{ alias: 1, type: 'Int32', value: 70 }] })).toMatchObject({ reject: 'sparkplug_no_birth' });
  });

  it('refuses a birth without bdSeq, a DBIRTH past maxDevicesPerNode, and a timestamp out of range', () => {
    const { send } = setup({ maxDevicesPerNode: 1 });
    expect(send('g/NBIRTH/e', { timestamp: T0, seq: 0, metrics: [] })).toMatchObject({ reject: 'invalid' });
    send('g/NBIRTH/e', nbirth());
    send('g/DBIRTH/e/d1', dbirth(1));
    expect(send('g/DBIRTH/e/d2', dbirth(2))).toMatchObject({ reject: 'sparkplug_limit' });
    expect(send('g/DDATA/e/d1', { timestamp: T0 + 3_600_000, seq: 3, metrics: [{ alias: 1, type: 'Int32', value: 70 }] })).toMatchObject({ rejected: [{ reason: 'timestamp_out_of_range' }] });
  });

  it('maps metrics named in ingest.sparkplug.fields', () => {
    const { send } = setup({ fields: { bpm: 'Pulse/BPM' } });
    send('g/NBIRTH/e', nbirth());
    const out = send('g/DBIRTH/e/d', { timestamp: T0, seq: 1, metrics: [{ name: 'Pulse/BPM', type: 'Int64', value: 81 }, { name: 'bpm', type: 'Int32', value: 1 }] });
    expect(out).toMatchObject({ readings: [{ values: { bpm: 81 } }] });
  });
});
