import { describe, expect, it } from 'vitest';
import { SequenceTracker } from '../../../gateway/pipeline/sequence-tracker.js';

describe('sequence tracker', () => {
  it('should drop a repeated (device, seq) and keep the same seq of another device', () => {
    const t = new SequenceTracker(64, 100);
    expect(t.observe('a', 1)).toBe('new');
    expect(t.observe('a', 1)).toBe('duplicate');
    expect(t.observe('b', 1)).toBe('new');
  });

  it('should count skipped seqs as gaps and later arrivals inside the window as fills, not duplicates', () => {
    const t = new SequenceTracker(64, 100);
    for (const s of [1, 2, 5, 6]) t.observe('a', s);
    expect(t.stats.gaps).toBe(2);
    expect(t.observe('a', 3)).toBe('new');
    expect(t.observe('a', 3)).toBe('duplicate');
    expect(t.stats.gapFills).toBe(1);
  });

  it('should not mistake a seq reused after the window moved on for a duplicate', () => {
    const t = new SequenceTracker(32, 100);
    t.observe('a', 1);
    t.observe('a', 40); // slot of 40 % 32 = 8 was cleared on the way
    expect(t.observe('a', 20)).toBe('new');
    expect(t.observe('a', 40)).toBe('duplicate');
  });

  it('should treat a seq far below the window as a device restart', () => {
    const t = new SequenceTracker(32, 100);
    for (let s = 1; s <= 100; s++) t.observe('a', s);
    expect(t.observe('a', 1)).toBe('new');
    expect(t.stats.resets).toBe(1);
    expect(t.observe('a', 1)).toBe('duplicate');
  });

  it('should treat seq 1 after a higher seq as a rebooted device, not a duplicate', () => {
    const t = new SequenceTracker(256, 100);
    for (let s = 1; s <= 10; s++) t.observe('a', s);
    expect(t.observe('a', 1)).toBe('new');
    expect(t.observe('a', 2)).toBe('new');
    expect(t.observe('a', 2)).toBe('duplicate');
    expect(t.stats.resets).toBe(1);
  });

  it('should evict the least recently seen device beyond maxDevices', () => {
    const t = new SequenceTracker(32, 2);
    t.observe('a', 1);
    t.observe('b', 1);
    t.observe('a', 2);
    t.observe('c', 1); // evicts b, the least recently seen
    expect(t.size).toBe(2);
    expect(t.stats.evictions).toBe(1);
    expect(t.observe('a', 2)).toBe('duplicate');
    expect(t.observe('b', 1)).toBe('new');
  });

  it('should give identical verdicts after snapshot and restore', () => {
    const a = new SequenceTracker(64, 100);
    for (const s of [1, 2, 4, 9, 7]) a.observe('x', s);
    const b = new SequenceTracker(64, 100);
    b.restore(JSON.parse(JSON.stringify(a.snapshot())));
    for (const s of [1, 2, 3, 4, 5, 9, 10]) expect(b.observe('x', s)).toBe(a.observe('x', s));
  });

  it('a checkpoint taken with a larger maxDevices should restore to at most maxDevices, keeping the most recently seen', () => {
    const big = new SequenceTracker(32, 10);
    for (let i = 0; i < 10; i++) big.observe(`d${i}`, 1);
    const small = new SequenceTracker(32, 4);
    small.restore(JSON.parse(JSON.stringify(big.snapshot())));
    expect(small.size).toBe(4);
    expect(small.observe('d9', 1)).toBe('duplicate');
    expect(small.observe('d0', 1)).toBe('new'); // evicted at restore: starts fresh
    expect(small.size).toBe(4);
  });
});
