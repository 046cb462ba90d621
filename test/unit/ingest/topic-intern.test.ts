import { describe, expect, it } from 'vitest';
import { topicAt } from '../../../gateway/ingest/publish-fast-path.js';

/** The fast path's topic table: the string for a topic's bytes, decoded once and handed out again. */
describe('topicAt', () => {
  const at = (s: Buffer | string, pad = 3): [Buffer, number, number] => {
    const bytes = typeof s === 'string' ? Buffer.from(s) : s;
    return [Buffer.concat([Buffer.alloc(pad, 0x41), bytes, Buffer.alloc(pad, 0x42)]), pad, pad + bytes.length];
  };

  it('decodes the bytes as UTF-8 wherever they sit in the buffer, ill-formed bytes as U+FFFD like the broker parser', () => {
    expect(topicAt(...at('sensors/heart-rate/dev-1'))).toBe('sensors/heart-rate/dev-1');
    expect(topicAt(...at('sensors/héart-rate/dev-\u{1F600}', 7))).toBe('sensors/héart-rate/dev-\u{1F600}');
    const bad = Buffer.concat([Buffer.from('sensors/heart-rate/dev-'), Buffer.from([0xc3, 0x28, 0xff])]);
    expect(topicAt(...at(bad))).toBe(bad.toString('utf8'));
    expect(topicAt(...at(bad))).toContain('\uFFFD');
    expect(topicAt(...at(''))).toBe('');
    const long = `sensors/heart-rate/${'x'.repeat(500)}`;
    expect(topicAt(...at(long))).toBe(long);
  });

  it('never hands out the string of another topic: topics alike in length and ending, many more than the table holds, each read back right', () => {
    const topics = Array.from({ length: 40_000 }, (_, i) => `${i % 7 === 0 ? 'zz' : 'sensors'}/heart-rate/${String(i).padStart(6, '0')}-tail-same-16b`);
    for (let round = 0; round < 2; round++) {
      for (const t of topics) expect(topicAt(...at(t, round + 1))).toBe(t);
    }
    // Same length and same last 16 bytes, differing only at the front.
    for (let i = 0; i < 200; i++) {
      expect(topicAt(...at(`a${i % 10}/same/tail-of-sixteen-bytes`))).toBe(`a${i % 10}/same/tail-of-sixteen-bytes`);
    }
  });

  it('keeps a copy of the bytes, not a view of the buffer it read them from (which the connection reuses)', () => {
    // Same length and last 16 bytes: the same slot of the table.
    const [buf, s, e] = at('aa/heart-rate/tail-of-sixteen-b');
    expect(topicAt(buf, s, e)).toBe('aa/heart-rate/tail-of-sixteen-b');
    buf.write('bb', s); // the read buffer now holds another topic where the first one was
    expect(topicAt(buf, s, e)).toBe('bb/heart-rate/tail-of-sixteen-b');
    expect(topicAt(...at('aa/heart-rate/tail-of-sixteen-b'))).toBe('aa/heart-rate/tail-of-sixteen-b');
  });
});
