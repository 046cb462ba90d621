import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../../gateway/ingest/rate-limiter.js';
import { mulberry32 } from '../../helpers/random.js';

describe('publish rate limiter', () => {
  it('should be off when publishesPerSecond is null', () => {
    expect(createRateLimiter({ publishesPerSecond: null, burst: 10, maxDevices: 10 })).toBeNull();
  });

  it('should allow a burst, then refuse (first refusal marked once per run), then refill at the rate', () => {
    const rl = createRateLimiter({ publishesPerSecond: 10, burst: 5, maxDevices: 100 })!;
    const t0 = 1_000_000;
    const verdicts = Array.from({ length: 8 }, () => rl.take('dev-a', t0));
    expect(verdicts).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'first_refusal', 'refused', 'refused']);
    expect(rl.take('dev-b', t0)).toBe('ok'); // buckets are per device
    expect(rl.take('dev-a', t0 + 99)).toBe('refused');
    expect(rl.take('dev-a', t0 + 100)).toBe('ok'); // 10/s = one token per 100 ms
    expect(rl.take('dev-a', t0 + 100)).toBe('first_refusal'); // a new run after being within budget
    expect(rl.take('dev-a', t0 + 60_000)).toBe('ok');
    for (let i = 0; i < 4; i++) expect(rl.take('dev-a', t0 + 60_000)).toBe('ok'); // refilled to burst, not beyond
    expect(rl.take('dev-a', t0 + 60_000)).toBe('first_refusal');
  });

  it('should never refill on a clock that steps back', () => {
    const rl = createRateLimiter({ publishesPerSecond: 1, burst: 1, maxDevices: 10 })!;
    expect(rl.take('d', 10_000)).toBe('ok');
    expect(rl.take('d', 5_000)).toBe('first_refusal');
    expect(rl.take('d', 10_999)).toBe('refused');
    expect(rl.take('d', 11_000)).toBe('ok');
  });

  it('should hold a sustained flood to its rate over time', () => {
    const rl = createRateLimiter({ publishesPerSecond: 50, burst: 20, maxDevices: 10 })!;
    const rnd = mulberry32(7);
    let t = 0;
    let ok = 0;
    while (t < 10_000) {
      if (rl.take('flooder', t) === 'ok') ok++;
      t += rnd() * 2; // ~1000 publishes per second
    }
    expect(ok).toBeGreaterThanOrEqual(20 + 50 * 10 - 2);
    expect(ok).toBeLessThanOrEqual(20 + 50 * 10 + 1);
  });

  it('should keep at most maxDevices buckets, dropping idle (full) ones first', () => {
    const rl = createRateLimiter({ publishesPerSecond: 1, burst: 2, maxDevices: 32 })!;
    rl.take('busy', 0);
    rl.take('busy', 0);
    for (let i = 0; i < 2000; i++) {
      rl.take(`dev-${i}`, 10_000 + i);
      expect(rl.size).toBeLessThanOrEqual(32);
    }
    // "busy" was refilled long ago and dropped; a dropped bucket starts full, which is what it had.
    expect(rl.take('busy', 20_000)).toBe('ok');
  });
});
