import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { ContentDedup } from '../../../gateway/ingest/content-dedup.js';
import { readingsOfIngestRecord } from '../../../gateway/ingest/ingest-record.js';
import { createPayloadDecoder } from '../../../gateway/ingest/payload-decoder.js';
import { parseTimestamp } from '../../../gateway/ingest/source-mapping.js';
import { createTopicRouter } from '../../../gateway/ingest/topic-router.js';
import { createConfiguredKindRegistry } from '../../../gateway/kinds/registry.js';
import { encodeIngestRecord } from '../../../gateway/log/ingest-record-format.js';

const NOW = 1_763_800_000_000;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

const config = loadConfig({
  env: {},
  overrides: {
    kinds: { meter: { fields: { watts: { type: 'float', min: 0, max: 5000, required: true }, phase: { type: 'int', min: 1, max: 3 } } } },
    ingest: {
      sources: [
        { topic: 'site/+/{deviceId}/power', kind: 'meter', fields: { watts: 'm.0.W', phase: 'm.0.ph' }, tsPath: 't', tsFormat: 's', seqPath: 'n' },
        { topic: 'plain/{deviceId}', kind: 'meter', fields: { watts: 'W' } },
      ],
    },
  },
});
const kinds = createConfiguredKindRegistry(config.kinds);
const router = createTopicRouter({ kinds, sources: config.ingest.sources, limits: config.ingest });
const meter = kinds.get('meter')!;

describe('topic router', () => {
  it('should route sensor topics first, then the sources in order, and nothing else', () => {
    expect(router.route('sensors/heart-rate/a1')).toEqual({ kind: 'heart-rate', deviceId: 'a1', mapping: null });
    expect(router.route('site/hall-3/m-7/power')).toMatchObject({ kind: 'meter', deviceId: 'm-7' });
    expect(router.route('plain/m-8')).toMatchObject({ kind: 'meter', deviceId: 'm-8' });
    for (const t of ['site/hall/m-7/energy', 'site/m-7/power', 'plain/a/b', 'plain/bad id', 'plain/', 'other']) expect(router.route(t), t).toBeNull();
    expect(router.expected).toContain('site/+/{deviceId}/power');
  });
});

describe('mapped payloads', () => {
  const decode = (topic: string, payload: unknown, receivedAt = NOW) => {
    const route = router.route(topic)!;
    return route.mapping!.decode(meter, route.deviceId, json(payload), receivedAt);
  };

  it('should take each field from its path (array indexes included), seq from its field and ts in seconds', () => {
    const r = decode('site/h/m-1/power', { t: (NOW - 1500) / 1000, n: 42, m: [{ W: 230.5, ph: 2 }] });
    expect(r).toEqual({ readings: [{ kind: 'meter', deviceId: 'm-1', seq: 42, ts: NOW - 1500, values: { watts: 230.5, phase: 2 } }], rejected: [] });
  });

  it('should use the arrival time and seq 0 when the source has neither, and map every element of an array', () => {
    const r = decode('plain/m-2', [{ W: 1 }, { W: 2 }, { W: -1 }], NOW + 7);
    expect(r.readings.map((x) => [x.seq, x.ts, x.values['watts']])).toEqual([[0, NOW + 7, 1], [0, NOW + 7, 2]]);
    expect(r.rejected).toEqual([{ reason: 'invalid', detail: 'watts must be a number in [0, 5000], got -1 (W)' }]);
  });

  it('should reject with the usual reasons: bad JSON, a bad or missing seq, a ts out of range, a missing required field', () => {
    expect(decode('plain/m-3', 'x').rejected).toEqual([{ reason: 'invalid', detail: 'reading is not a JSON object' }]);
    const route = router.route('plain/m-3')!;
    expect(route.mapping!.decode(meter, 'm-3', Buffer.from('{"W":'), NOW).rejected[0]?.reason).toBe('decode_error');
    expect(decode('site/h/m-1/power', { t: NOW / 1000, m: [{ W: 1 }] }).rejected[0]?.detail).toBe('n (seq) must be an integer >= 1, got undefined');
    expect(decode('site/h/m-1/power', { t: NOW / 1000 + 86_400, n: 1, m: [{ W: 1 }] }).rejected[0]?.reason).toBe('timestamp_out_of_range');
    expect(decode('site/h/m-1/power', { t: NOW / 1000, n: 1, m: [] }).rejected[0]?.detail).toBe('missing field watts (m.0.W)');
  });

  it('should decode a mapped ingest record in replay exactly as live (arrival time = the record\'s receivedAt)', () => {
    const payload = json({ W: 12 });
    const live = router.route('plain/m-4')!.mapping!.decode(meter, 'm-4', payload, NOW);
    const decoder = createPayloadDecoder(kinds, config.ingest);
    const replayed = readingsOfIngestRecord(encodeIngestRecord(NOW, 'plain/m-4', payload), kinds, decoder, router);
    expect(replayed).toEqual(live.readings);
    expect(replayed[0]?.ts).toBe(NOW);
  });
});

describe('parseTimestamp', () => {
  it('should read ms, s and ISO 8601 (no offset = UTC) and refuse anything else', () => {
    expect(parseTimestamp(NOW, 'ms')).toBe(NOW);
    expect(parseTimestamp(NOW + 0.5, 'ms')).toBeNull();
    expect(parseTimestamp(1_763_800_000.25, 's')).toBe(1_763_800_000_250);
    expect(parseTimestamp('2026-12-02T06:30:00', 'iso8601')).toBe(Date.UTC(2026, 11, 2, 6, 30, 0));
    expect(parseTimestamp('2026-12-02 06:30:00.5', 'iso8601')).toBe(Date.UTC(2026, 11, 2, 6, 30, 0, 500));
    expect(parseTimestamp('2026-12-02T08:30:00+02:00', 'iso8601')).toBe(Date.UTC(2026, 11, 2, 6, 30, 0));
    for (const bad of ['yesterday', '2026-12-02', 1_763_800_000, '2026-13-40T99:00:00', { toString: 1 }]) expect(parseTimestamp(bad, 'iso8601'), JSON.stringify(bad)).toBeNull();
    expect(parseTimestamp('1763800000', 's')).toBeNull();
  });
});

describe('content dedup (devices without seq)', () => {
  it('should drop the same bytes of the same device within the horizon only', () => {
    const d = new ContentDedup(10);
    const a = Buffer.from('{"t":1}');
    expect(d.isDuplicate('k\u0000x', a, 1000, 2000)).toBe(false);
    expect(d.isDuplicate('k\u0000x', a, 2999, 2000)).toBe(true);
    expect(d.isDuplicate('k\u0000y', a, 2999, 2000)).toBe(false); // another device
    expect(d.isDuplicate('k\u0000x', Buffer.from('{"t":2}'), 3000, 2000)).toBe(false);
    expect(d.isDuplicate('k\u0000x', a, 3001, 2000)).toBe(false); // past the horizon of the first
    expect(d.isDuplicate('k\u0000x', a, 3002, 0)).toBe(false); // horizon 0 = off
  });

  it('should keep at most maxDevices devices, forgetting the least recently seen (counted)', () => {
    let evicted = 0;
    const d = new ContentDedup(2, () => evicted++);
    const p = Buffer.from('same');
    d.isDuplicate('a', p, 0, 10_000);
    d.isDuplicate('b', p, 0, 10_000);
    d.isDuplicate('a', p, 1, 10_000); // a is now the most recent
    d.isDuplicate('c', p, 2, 10_000); // evicts b
    expect(d.size).toBe(2);
    expect(evicted).toBe(1);
    expect(d.isDuplicate('a', p, 3, 10_000)).toBe(true);
    expect(d.isDuplicate('b', p, 3, 10_000)).toBe(false); // forgotten: new again
  });
});
