import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import { createHealthSampler } from '../../../gateway/sinks/health-sampler.js';
import { createSinkMetrics } from '../../../gateway/sinks/sink-metrics.js';
import type { HealthSample } from '../../../gateway/sinks/types.js';
import { sample } from '../../helpers/metrics.js';

describe('health sampler', () => {
  it('each sample rates the ingest totals over the time since the previous sample, not since start; retries are copied once', async () => {
    const clock = new ManualClock(1_000_000);
    const totals = { received: 0, rejected: 0, duplicates: 0 };
    const outbox = { pending: 3, retries: 0, oldestUnackedAgeMs: 250 };
    const registry = new Registry();
    const samples: HealthSample[] = [];
    const take = createHealthSampler({ totals, outbox, sinkName: 'embedded', metrics: createSinkMetrics(registry), add: (s) => samples.push(s), clock });
    totals.received = 100;
    totals.rejected = 10;
    outbox.retries = 2;
    clock.advance(2000);
    take();
    totals.received = 130;
    totals.duplicates = 4;
    clock.advance(1000);
    take();
    expect(samples.map((s) => [s.ts, s.values['readings_per_s'], s.values['rejected_per_s'], s.values['duplicates_per_s']])).toEqual([
      [1_002_000, 50, 5, 0],
      [1_003_000, 30, 0, 4],
    ]);
    expect(samples[1]!.values).toMatchObject({ log_backlog_records: 3, sink_lag_ms: 250 });
    expect(sample(await registry.metrics(), 'pulsegate_sink_retries_total', { sink: 'embedded' })).toBe(2);
  });
});
