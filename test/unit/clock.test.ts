import { describe, expect, it } from 'vitest';
import { systemClock } from '../../gateway/clock.js';

/** Busy-waits until Date.now() has moved past `t` (at most 50 ms). */
function spinPast(t: number): void {
  const deadline = performance.now() + 50;
  while (Date.now() <= t && performance.now() < deadline) {
    // wait for the wall clock to tick
  }
}

describe('systemClock', () => {
  it('gives one reading to a run of synchronous work, taken when the run first asks', () => {
    const before = Date.now();
    const first = systemClock.now();
    spinPast(first);
    expect(systemClock.now()).toBe(first);
    expect(first).toBeGreaterThanOrEqual(before);
    expect(first).toBeLessThanOrEqual(Date.now());
  });

  it('reads the wall clock again after a microtask checkpoint, an awaited continuation and a timer', async () => {
    const a = systemClock.now();
    spinPast(a);
    await Promise.resolve();
    const b = systemClock.now();
    expect(b).toBeGreaterThan(a);
    spinPast(b);
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    const c = systemClock.now();
    expect(c).toBeGreaterThan(b);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const d = systemClock.now();
    // Read back to back, but a loaded machine can preempt the test between two reads: the
    // reading is bounded by the wall clock after it, not by a 1 ms distance to it.
    const after = Date.now();
    expect(d).toBeGreaterThanOrEqual(c + 4);
    expect(d).toBeLessThanOrEqual(after);
  });
});
