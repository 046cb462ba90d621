import { describe, expect, it } from 'vitest';
import { encodeRecordInto, HEADER_BYTES } from '../../../gateway/log/record-format.js';
import { createTailCache } from '../../../gateway/log/tail-cache.js';

/** Records [first, first + n) of type 1 (type 5 every fifth), as one group commit in the segment format. */
function group(first: number, n: number, payloadBytes = 20): Buffer {
  const buf = Buffer.alloc(n * (HEADER_BYTES + payloadBytes));
  let pos = 0;
  for (let i = 0; i < n; i++) pos += encodeRecordInto(buf, pos, (first + i) % 5 === 0 ? 5 : 1, first + i, 1000 + first + i, Buffer.alloc(payloadBytes, (first + i) & 0xff));
  return buf;
}

describe('tail cache', () => {
  it('tail cache should hand out the records it holds from any offset, and null for offsets it does not hold', () => {
    const cache = createTailCache(64 * 1024);
    const g = group(10, 5);
    cache.push(10, 15, g, 0, g.length);
    cache.push(15, 20, group(15, 5), 0, group(15, 5).length);
    const hit = cache.read(12, 100, null)!;
    expect(hit.records.map((r) => r.offset)).toEqual([12, 13, 14]);
    expect(hit.next).toBe(15);
    expect(hit.records[0]!.timestamp).toBe(1012);
    expect(hit.records[0]!.payload.equals(Buffer.alloc(20, 12))).toBe(true);
    expect(cache.read(15, 17, null)!.records.map((r) => r.offset)).toEqual([15, 16]);
    expect(cache.read(9, 100, null)).toBeNull();
    expect(cache.read(20, 100, null)).toBeNull();
  });

  it('tail cache should make only the records of the wanted types, and still say how far it looked', () => {
    const cache = createTailCache(64 * 1024);
    const g = group(0, 12);
    cache.push(0, 12, g, 0, g.length);
    const hit = cache.read(0, 100, new Set([5]))!;
    expect(hit.records.map((r) => r.offset)).toEqual([0, 5, 10]);
    expect(hit.next).toBe(12);
  });

  it('tail cache should evict its oldest groups to stay within its bound, and keep a copy of what it was given', () => {
    const cache = createTailCache(1000);
    for (let first = 0; first < 100; first += 5) {
      const g = group(first, 5);
      cache.push(first, first + 5, g, 0, g.length);
      g.fill(0);
      expect(cache.bytes).toBeLessThanOrEqual(1000);
    }
    expect(cache.endOffset).toBe(100);
    expect(cache.firstOffset).toBeGreaterThan(0);
    expect(cache.read(0, 100, null)).toBeNull();
    const last = cache.read(99, 100, null)!;
    expect(last.records[0]!.payload.equals(Buffer.alloc(20, 99))).toBe(true);
  });

  it('tail cache should start over rather than hold a hole: a group larger than the bound, or not following the last one', () => {
    const cache = createTailCache(1000);
    const a = group(0, 5);
    cache.push(0, 5, a, 0, a.length);
    const big = group(5, 40);
    cache.push(5, 45, big, 0, big.length);
    expect(cache.read(0, 100, null)).toBeNull();
    expect(cache.read(44, 100, null)).toBeNull();
    expect(cache.bytes).toBe(0);
    const b = group(45, 5);
    cache.push(45, 50, b, 0, b.length);
    expect(cache.read(45, 100, null)!.records.length).toBe(5);
    const c = group(60, 5);
    cache.push(60, 65, c, 0, c.length);
    expect(cache.read(45, 100, null)).toBeNull();
    expect(cache.firstOffset).toBe(60);
  });
});
