import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { sample, sampleOr0 } from '../../helpers/metrics.js';

async function exposition(): Promise<string> {
  const registry = new Registry();
  const rejected = new Counter({ name: 'demo_rejected_total', help: 'h', labelNames: ['reason'], registers: [registry] });
  new Counter({ name: 'demo_untouched_total', help: 'h', labelNames: ['reason'], registers: [registry] });
  new Counter({ name: 'demo_plain_total', help: 'h', registers: [registry] });
  const hist = new Histogram({ name: 'demo_seconds', help: 'h', buckets: [1], registers: [registry] });
  rejected.inc({ reason: 'decode_error' }, 3);
  hist.observe(0.5);
  return registry.metrics();
}

describe('metrics test helper', () => {
  it('sample() of a renamed metric read 0, so toBe(0) passed: it throws naming the metric', async () => {
    const text = await exposition();
    expect(() => sample(text, 'demo_renamed_total')).toThrow(/demo_renamed_total is not in the exposition/);
    expect(() => sample(text, 'demo_renamed_total', { reason: 'decode_error' })).toThrow(/not in the exposition/);
    expect(sampleOr0(text, 'demo_renamed_total')).toBe(0);
  });

  it('sample() of a renamed label read 0: it throws naming the labels the samples carry', async () => {
    const text = await exposition();
    expect(() => sample(text, 'demo_rejected_total', { cause: 'decode_error' })).toThrow(/reason="decode_error"/);
    expect(() => sample(text, 'demo_rejected_total')).toThrow(/has labels/);
  });

  it('sample() reads a sample, 0 for an absent label set of a declared metric, and histogram parts', async () => {
    const text = await exposition();
    expect(sample(text, 'demo_rejected_total', { reason: 'decode_error' })).toBe(3);
    expect(sample(text, 'demo_rejected_total', { reason: 'too_large' })).toBe(0);
    expect(sample(text, 'demo_untouched_total', { reason: 'too_large' })).toBe(0);
    expect(sample(text, 'demo_plain_total')).toBe(0);
    expect(sample(text, 'demo_seconds_count')).toBe(1);
    expect(sample(text, 'demo_seconds_bucket', { le: '1' })).toBe(1);
  });
});
