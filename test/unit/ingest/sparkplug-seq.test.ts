import { describe, expect, it } from 'vitest';
import { SparkplugSeq } from '../../../gateway/ingest/sparkplug-seq.js';
import { SequenceTracker } from '../../../gateway/pipeline/sequence-tracker.js';

/** Raw Sparkplug seqs of `n` messages after a birth at seq 0: 1, 2, ..., 255, 0, 1, ... */
const rawSeqs = (n: number): number[] => Array.from({ length: n }, (_, i) => (i + 1) % 256);

describe('SparkplugSeq', () => {
  it('numbers messages with readings 1, 2, 3, ... across the 255 -> 0 wrap', () => {
    const s = new SparkplugSeq(0);
    expect(rawSeqs(600).map((r) => s.number(r).seq)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
  });

  it('gives no number to a message without readings, so the tracker sees no gap for it', () => {
    const s = new SparkplugSeq(0);
    const tracker = new SequenceTracker(256, 10);
    for (const raw of rawSeqs(700)) {
      if (raw % 3 === 0) s.see(raw); // an NDATA of unmapped metrics, say
      else tracker.observe('edge', s.number(raw).seq!);
    }
    expect(tracker.stats).toMatchObject({ gaps: 0, gapFills: 0, resets: 0 });
  });

  it('counts each lost message as one gap, also across the wrap, and a late one as a gap fill', () => {
    const s = new SparkplugSeq(0);
    const tracker = new SequenceTracker(256, 10);
    const raws = rawSeqs(300);
    const lost = new Set([7, 100, 254, 255, 40 + 256]); // indexes into raws: seqs 8, 101, 255, 0, 41 of the second lap
    for (let i = 0; i < raws.length; i++) if (!lost.has(i)) tracker.observe('edge', s.number(raws[i]!).seq!);
    expect(tracker.stats.gaps).toBe(lost.size);
    expect(s.lost).toBe(lost.size);
    // seq 41 of the second lap arrives late: it gets the number it reserved.
    expect(tracker.observe('edge', s.number(raws[296]!).seq!)).toBe('new');
    expect(tracker.stats.gapFills).toBe(1);
  });

  it('gives a resent message its number again, which the tracker drops as a duplicate', () => {
    const s = new SparkplugSeq(0);
    const tracker = new SequenceTracker(256, 10);
    for (const raw of rawSeqs(260)) tracker.observe('edge', s.number(raw).seq!);
    expect(tracker.observe('edge', s.number(200).seq!)).toBe('duplicate');
    expect(tracker.observe('edge', s.number(4).seq!)).toBe('duplicate'); // the last message, 260 % 256
    expect(tracker.stats.gaps).toBe(0);
  });

  it('reads a step back to a seq never seen in this session as a jump forward (129 lost)', () => {
    const s = new SparkplugSeq(0);
    expect(s.number(1).seq).toBe(1);
    // 1 -> 131 is a step of 130: more than half the ring, and seq 131 was never seen.
    expect(s.number(131).seq).toBe(131);
    expect(s.lost).toBe(129);
  });
});
