import { describe, expect, it } from 'vitest';
import { decodeIngestRecord, encodeIngestRecord } from '../../../gateway/log/ingest-record-format.js';

/** The layout written out by hand, as the format's comment states it, with Buffer's own UTF-8. */
function reference(receivedAt: number, topic: string, payload: Buffer): Buffer {
  const t = Buffer.from(topic, 'utf8');
  const head = Buffer.alloc(11);
  head[0] = 1;
  head.writeDoubleLE(receivedAt, 1);
  head.writeUInt16LE(t.length, 9);
  return Buffer.concat([head, t, payload]);
}

describe('ingest record format', () => {
  it('should write the layout byte for byte for every sort of topic, each encoded more than once', () => {
    const payload = Buffer.from([8, 1, 16, 200, 1, 0xff, 0]);
    const topics = [
      'sensors/heart-rate/athlete-1',
      'sensors/brücke/ü-7',
      'sensors/心拍/🫀',
      // A lone surrogate becomes U+FFFD, as Buffer.from has it.
      'sensors/x/\ud800',
      '',
      'x'.repeat(160),
      'y'.repeat(161),
      'z'.repeat(300) + 'é',
    ];
    for (let round = 0; round < 3; round++) {
      for (const topic of topics) {
        const at = 1_763_800_000_000 + round + 0.25;
        const got = encodeIngestRecord(at, topic, payload);
        expect(got.equals(reference(at, topic, payload)), `${JSON.stringify(topic.slice(0, 20))} round ${round}`).toBe(true);
        expect(decodeIngestRecord(got)).toEqual({ receivedAt: at, topic: Buffer.from(topic, 'utf8').toString('utf8'), payload });
      }
    }
  });

  it('should give each topic its own bytes past the topics remembered (the memo is cleared, never wrong)', () => {
    const payload = Buffer.from('{}');
    for (let i = 0; i < 10_000; i++) {
      const topic = `sensors/heart-rate/d-${i}`;
      expect(encodeIngestRecord(i, topic, payload).equals(reference(i, topic, payload))).toBe(true);
    }
    // And the first ones again, after the memo was cleared.
    for (let i = 0; i < 100; i++) {
      const topic = `sensors/heart-rate/d-${i}`;
      expect(decodeIngestRecord(encodeIngestRecord(i, topic, payload)).topic).toBe(topic);
    }
  });

  it('should not share bytes between records: a record written later leaves an earlier one as it was', () => {
    const first = encodeIngestRecord(1, 'sensors/heart-rate/a', Buffer.from('one'));
    const copy = Buffer.from(first);
    encodeIngestRecord(2, 'sensors/heart-rate/a', Buffer.from('two-longer'));
    expect(first.equals(copy)).toBe(true);
  });
});
