import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createSinkMetrics } from '../../../gateway/sinks/sink-metrics.js';

describe('sink metrics', () => {
  it('should count points, time batches, retries and pending batches on the given registry', async () => {
    const registry = new Registry();
    const metrics = createSinkMetrics(registry);
    metrics.written('influx', 120, 0.02);
    metrics.failed('influx', 1.5);
    metrics.retried('influx');
    metrics.setPendingBatches(7);
    const text = await registry.metrics();
    expect(text).toContain('pulsegate_sink_points_written_total{sink="influx"} 120');
    expect(text).toContain('pulsegate_sink_points_written_total{sink="embedded"} 0');
    expect(text).toContain('pulsegate_sink_batch_seconds_count{sink="influx",outcome="ok"} 1');
    expect(text).toContain('pulsegate_sink_batch_seconds_count{sink="influx",outcome="error"} 1');
    expect(text).toContain('pulsegate_sink_retries_total{sink="influx"} 1');
    expect(text).toContain('pulsegate_sink_pending_batches 7');
  });

  it('should share the metrics when created twice on one registry', async () => {
    const registry = new Registry();
    createSinkMetrics(registry).written('embedded', 2, 0.001);
    createSinkMetrics(registry).written('embedded', 3, 0.001);
    expect(await registry.metrics()).toContain('pulsegate_sink_points_written_total{sink="embedded"} 5');
  });
});
