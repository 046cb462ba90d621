import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { createIngestRecordReader, readingsOfIngestRecord } from '../../../gateway/ingest/ingest-record.js';
import { createPayloadDecoder } from '../../../gateway/ingest/payload-decoder.js';
import { encodeSparkplugRecord } from '../../../gateway/ingest/sparkplug-record.js';
import { createTopicRouter } from '../../../gateway/ingest/topic-router.js';
import { topicHash } from '../../../gateway/ingest/topic.js';
import { createConfiguredKindRegistry } from '../../../gateway/kinds/registry.js';
import { encodeIngestRecord } from '../../../gateway/log/ingest-record-format.js';

const NOW = 1_763_800_000_000;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const config = loadConfig({
  env: {},
  overrides: {
    kinds: { meter: { fields: { watts: { type: 'float', min: 0, max: 5000, required: true } } } },
    ingest: { sources: [{ topic: 'plain/{deviceId}', kind: 'meter', fields: { watts: 'W' } }] },
  },
});
const kinds = createConfiguredKindRegistry(config.kinds);
const router = createTopicRouter({ kinds, sources: config.ingest.sources, limits: config.ingest });
const decoder = createPayloadDecoder(kinds, config.ingest);

/** Records of every sort of topic, each topic several times: sensor, mapped, Sparkplug, unknown. */
function records(): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < 5; i++) {
    const at = NOW + i;
    out.push(encodeIngestRecord(at, `sensors/heart-rate/d${i % 3}`, json({ seq: i + 1, ts: at, bpm: 60 + i })));
    out.push(encodeIngestRecord(at, `plain/m-${i % 2}`, json({ W: 10 + i })));
    out.push(encodeIngestRecord(at, 'spBv1.0/g/DDATA/n/d', encodeSparkplugRecord([{ kind: 'heart-rate', deviceId: 'sp', seq: i + 1, ts: at, values: { bpm: 70 } }])));
    out.push(encodeIngestRecord(at, 'sensors/no-such-kind/x', json({ seq: 1, ts: at, bpm: 1 })));
    out.push(encodeIngestRecord(at, 'nowhere', json({ W: 1 })));
  }
  return out;
}

describe('ingest record reader', () => {
  it('ingest record reader should give what readingsOfIngestRecord gives for every record, topics met again included', () => {
    const reader = createIngestRecordReader(kinds, decoder, router);
    const small = createIngestRecordReader(kinds, decoder, router, 2);
    for (const rec of [...records(), ...records()]) {
      const expected = readingsOfIngestRecord(rec, kinds, decoder, router);
      expect(reader.readings(rec)).toEqual(expected);
      expect(small.readings(rec)).toEqual(expected);
      expect(reader.receivedAt(rec)).toBe(rec.readDoubleLE(1));
    }
    expect(reader.readings(records()[0]!)[0]).toMatchObject({ kind: 'heart-rate', deviceId: 'd0' });
  });

  it('ingest record reader should route topics of the same hash each as itself, each once', () => {
    // These three topics have the same topicHash, the key of the reader's topic memo: the same
    // length and the same last 16 bytes.
    const ids = ['a-0123456789abcdef', 'b-0123456789abcdef', 'c-0123456789abcdef'];
    const hashes = ids.map((id) => Buffer.from(`sensors/heart-rate/${id}`)).map((b) => topicHash(b, 0, b.length));
    expect(new Set(hashes).size).toBe(1);
    // Each topic is routed once, not once per record: they do not take turns in one entry.
    const routed: string[] = [];
    const counting = { expected: router.expected, route: (topic: string) => (routed.push(topic), router.route(topic)) };
    const reader = createIngestRecordReader(kinds, decoder, counting);
    for (let i = 0; i < 3; i++) {
      for (const deviceId of ids) {
        const rec = encodeIngestRecord(NOW, `sensors/heart-rate/${deviceId}`, json({ seq: i + 1, ts: NOW, bpm: 80 }));
        expect(reader.readings(rec)).toEqual([expect.objectContaining({ deviceId, seq: i + 1 })]);
      }
    }
    expect(routed).toEqual(ids.map((id) => `sensors/heart-rate/${id}`));
  });

  it('ingest record reader should refuse a record of an unknown version as decodeIngestRecord does', () => {
    const rec = encodeIngestRecord(NOW, 'sensors/heart-rate/a', json({ seq: 1, ts: NOW, bpm: 80 }));
    rec[0] = 9;
    expect(() => createIngestRecordReader(kinds, decoder, router).readings(rec)).toThrow('unknown ingest record version 9');
  });
});
