import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogMetrics } from '../../../gateway/log/log-metrics.js';
import { createOutbox } from '../../../gateway/log/outbox.js';
import { appendMany, openLog, tempDir, until } from './log-test-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('pulsegate-logmetrics-'));
});
afterEach(async () => {
  await cleanup();
});

describe('log metrics', () => {
  it('log metrics should expose appends, fsyncs, size and outbox age on the given registry', async () => {
    const registry = new Registry();
    const metrics = createLogMetrics(registry);
    const log = await openLog(dir, { onFsync: metrics.observeFsync });
    metrics.attachLog(log);
    const outbox = await createOutbox({ log, destination: 'influx', send: async () => {}, retry: { initialMs: 1, maxMs: 1 } });
    metrics.attachOutbox(outbox);
    await appendMany(log, 10);
    const text = await registry.metrics();
    expect(text).toMatch(/^pulsegate_log_appended_records_total 10$/m);
    expect(text).toMatch(/^pulsegate_log_appended_bytes_total \d+$/m);
    expect(text).toMatch(/^pulsegate_log_fsync_seconds_count [1-9]\d*$/m);
    expect(text).toMatch(/^pulsegate_log_size_bytes [1-9]\d*$/m);
    expect(text).toMatch(/^pulsegate_log_oldest_unacked_age_seconds\{destination="influx"\} 0$/m);
    expect(text).toMatch(/^pulsegate_log_recovery_truncated_bytes_total 0$/m);
    await appendMany(log, 5);
    expect(await registry.metrics()).toMatch(/^pulsegate_log_appended_records_total 15$/m);
    await outbox.close();
    await log.close();
  });

  it('log metrics should be shared by a log and an outbox given the same registry', async () => {
    const registry = new Registry();
    const log = await openLog(dir, { registry });
    const outbox = createOutbox({ log, destination: 'embedded', send: async () => {}, retry: { initialMs: 1, maxMs: 1 }, registry });
    await outbox.start();
    await outbox.enqueue(Buffer.from('batch'));
    await until(() => outbox.delivered === 1);
    const text = await registry.metrics();
    expect(text).toMatch(/^pulsegate_log_appended_records_total 2$/m);
    expect(text).toMatch(/^pulsegate_log_outbox_pending_records\{destination="embedded"\} 0$/m);
    await outbox.close();
    await log.close();
  });
});
