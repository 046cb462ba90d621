import { describe, expect, it } from 'vitest';
import { InOrderAnswers, type Answer } from '../../../gateway/ingest/in-order-answers.js';

describe('InOrderAnswers', () => {
  it('releases answers in the order they were taken, each once, with its own error', () => {
    const q = new InOrderAnswers();
    const released: string[] = [];
    const a = q.next((err) => released.push(`a:${err?.message ?? 'ok'}`));
    const b = q.next((err) => released.push(`b:${err?.message ?? 'ok'}`));
    const c = q.next((err) => released.push(`c:${err?.message ?? 'ok'}`));
    c(null);
    b(new Error('refused'));
    expect(released).toEqual([]);
    expect(q.busy).toBe(true);
    a();
    expect(released).toEqual(['a:ok', 'b:refused', 'c:ok']);
    a();
    c(new Error('again'));
    expect(released).toEqual(['a:ok', 'b:refused', 'c:ok']);
    expect(q.busy).toBe(false);
    expect(q.retained).toBe(0);
  });

  it('keeps the order when a released answer takes the next ones at once (the broker reading on)', () => {
    const q = new InOrderAnswers();
    const released: number[] = [];
    let third: Answer | null = null;
    const first = q.next(() => {
      released.push(1);
      // Released, the broker parses the next packets and answers one of them at once.
      third = q.next(() => released.push(3));
      third(null);
    });
    const second = q.next(() => released.push(2));
    second(null);
    first(null);
    expect(released).toEqual([1, 2, 3]);
    expect(q.busy).toBe(false);
  });

  it('drops released slots while a client pipelines without ever having all its answers released', () => {
    const q = new InOrderAnswers();
    let released = 0;
    // Always two publishes in flight: the older is answered when the next one arrives.
    let older = q.next(() => released++);
    let peak = 0;
    for (let i = 0; i < 100_000; i++) {
      const newer = q.next(() => released++);
      older(null);
      older = newer;
      peak = Math.max(peak, q.retained);
    }
    older(null);
    expect(released).toBe(100_001);
    expect(peak).toBeLessThan(2_100);
    expect(q.retained).toBe(0);
  });
});
