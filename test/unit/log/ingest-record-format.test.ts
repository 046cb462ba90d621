import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeIngestRecord, encodeIngestRecord, ingestRecordBody } from '../../../gateway/log/ingest-record-format.js';
import { createMessageLog } from '../../../gateway/log/message-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';

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

  it('should refuse a topic over 65535 UTF-8 bytes rather than write a record with a wrong topic length', () => {
    // 30,000 U+FFFD (what invalid bytes of a publish's topic decode to) are 90,000 UTF-8 bytes.
    const topic = 'spBv1.0/g/DDATA/e/' + '\ufffd'.repeat(30_000);
    expect(() => encodeIngestRecord(1, topic, Buffer.from('x'))).toThrow(RangeError);
    expect(() => ingestRecordBody(1, topic, Buffer.from('x'))).toThrow(RangeError);
    // The longest topic that fits is written whole.
    const longest = 'a'.repeat(0xffff);
    expect(decodeIngestRecord(encodeIngestRecord(2, longest, Buffer.from('y'))).topic).toBe(longest);
  });

  it('should not share bytes between records: a record written later leaves an earlier one as it was', () => {
    const first = encodeIngestRecord(1, 'sensors/heart-rate/a', Buffer.from('one'));
    const copy = Buffer.from(first);
    encodeIngestRecord(2, 'sensors/heart-rate/a', Buffer.from('two-longer'));
    expect(first.equals(copy)).toBe(true);
  });

  it('should have the log write a record body as the layout says, CRC checked on read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pulsegate-ingest-body-'));
    try {
      const cases = [
        { at: 1_763_800_000_000.5, topic: 'sensors/heart-rate/athlete-1', payload: Buffer.from([8, 1, 16, 200, 1]) },
        { at: 2, topic: 'sensors/心拍/🫀', payload: Buffer.alloc(0) },
        { at: 3, topic: 'z'.repeat(300), payload: Buffer.alloc(70_000, 7) },
        { at: 4, topic: 'sensors/heart-rate/athlete-1', payload: Buffer.from('{"seq":1}') },
      ];
      let log = await createMessageLog({ dir });
      await log.start();
      for (const c of cases) {
        const body = ingestRecordBody(c.at, c.topic, c.payload);
        expect(body.length).toBe(reference(c.at, c.topic, c.payload).length);
        log.append(RECORD_TYPES.ingest, body);
      }
      await log.whenDurable(log.nextOffset - 1);
      await log.close();
      // A fresh log verifies every record's CRC at start and reads them from disk.
      log = await createMessageLog({ dir });
      await log.start();
      const got: Buffer[] = [];
      for await (const r of log.read(log.firstOffset)) got.push(Buffer.from(r.payload));
      await log.close();
      expect(got).toHaveLength(cases.length);
      cases.forEach((c, i) => expect(got[i]!.equals(reference(c.at, c.topic, c.payload)), `record ${i}`).toBe(true));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
