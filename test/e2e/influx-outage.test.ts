import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config/load-config.js';
import { createKindRegistry } from '../../gateway/kinds/registry.js';
import { createInfluxSink } from '../../gateway/sinks/influx-sink.js';
import { runSimulator, type SimulatorProgress } from '../../simulators/index.js';
import type { ChildGateway } from '../helpers/child-gateway.js';
import { rssBytes, startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import { startInfluxd, type InfluxdHandle } from '../helpers/influxd.js';
import { sample, scrape } from '../helpers/metrics.js';
import { firstLines, heartRateWindowMismatches, readingMismatches, runProblems, storedReadings, storedWindows } from '../helpers/oracle.js';

/**
 * A store outage under load. The gateway runs as a child process (so its memory is its own) on a
 * real influxd; a simulator publishes QoS 1 readings paced at RATE readings/s for SPAN_S seconds.
 * Mid-run influxd is killed (SIGKILL, data kept) for OUTAGE_MS and then restarted on the same
 * port and data. Promises checked:
 *  - ingest does not depend on the store: PUBACKs keep coming during the outage;
 *  - the batches wait in the log: the outbox backlog grows while the store is down, and the
 *    gateway's RSS stays bounded (growth below RSS_GROWTH_LIMIT);
 *  - after the store returns and a graceful stop, every window lands exactly once (the stored
 *    windows equal the summary: no gap, no double count) and every acknowledged reading is stored
 *    once.
 *
 * RSS_GROWTH_LIMIT is deliberately generous: during the outage ~RATE * OUTAGE_MS / 1000 readings
 * (about 15k, a few MB as JS objects) arrive; the bound only has to catch a heap that keeps every
 * pending batch (or a retry loop that leaks), not GC noise.
 */
const RATE = 3000;
const SPAN_S = 18;
const DEVICES = 20;
const OUTAGE_AFTER_MS = 5000;
const OUTAGE_MS = 5000;
const RSS_GROWTH_LIMIT = 150 * 1024 * 1024;
const DATABASE = 'pulsegate_e2e';

const dataDir = mkdtempSync(join(tmpdir(), 'pg-outage-'));
let influxd: InfluxdHandle | null = null;
let gw: ChildGateway | null = null;
afterAll(async () => {
  if (gw !== null && gw.child.exitCode === null && gw.child.signalCode === null) {
    gw.child.kill('SIGKILL');
    await gw.exited;
  }
  await influxd?.stop();
  if (process.env['PULSEGATE_KEEP_TEST_DATA']) process.stderr.write(`kept ${dataDir}\n`);
  else rmSync(dataDir, { recursive: true, force: true });
});

/** The scenario's timeline (how long load runs before and during the outage, the sampling period), not a wait for a condition. */
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface OutageSample {
  readonly at: number;
  readonly acked: number;
  readonly outboxPending: number;
  readonly sinkPending: number;
  readonly rss: number | null;
}

describe('influx outage', () => {
  it('influx outage should keep acknowledging, hold the backlog on disk and land every window exactly once', async () => {
    const t0 = Date.now();
    influxd = await startInfluxd();
    gw = await startChildGatewayWithConfig(dataDir, {
      sinks: {
        influxUrl: `${influxd.url}/${DATABASE}`,
        flushIntervalMs: 200,
        // Short backoff, so the backlog is resent within a second of the store's return.
        retryInitialMs: 100,
        retryMaxMs: 1000,
        // pulsegate_sink_pending_batches is refreshed with the health samples.
        healthIntervalMs: 250,
      },
    });
    const pid = gw.child.pid!;
    const http = gw.ports.http;
    const tReady = Date.now();

    let progress: SimulatorProgress | null = null;
    const run = runSimulator({
      kind: 'heart-rate',
      url: `mqtt://127.0.0.1:${gw.ports.mqtt}`,
      devices: DEVICES,
      connections: 2,
      qos: 1,
      batch: 5,
      realtime: false,
      totalRate: RATE,
      durationS: SPAN_S,
      seed: 21,
      // Paced by totalRate, event time advances with the wall clock; starting two minutes back
      // keeps every ts in the past and within the gateway's 7-day bound. Seven seconds before a
      // minute boundary: the 10s and 1m windows of every device fire in the middle of the
      // outage (and the next 10s ones after it), so emissions wait in the log too.
      startTs: Math.floor((Date.now() - 120_000) / 60_000) * 60_000 - 7000,
      outOfOrder: 0.01,
      duplicates: 0.01,
      progressIntervalMs: 100,
      onProgress: (p) => {
        progress = p;
      },
    });
    const acked = (): number => (progress as SimulatorProgress | null)?.readingsAcked ?? 0;
    const probe = async (): Promise<OutageSample> => {
      const text = await scrape(http);
      return {
        at: Date.now(),
        acked: acked(),
        outboxPending: sample(text, 'pulsegate_log_outbox_pending_records', { destination: 'influx' }),
        sinkPending: sample(text, 'pulsegate_sink_pending_batches'),
        rss: rssBytes(pid),
      };
    };

    // Normal operation first: readings flow and the store keeps up.
    await sleep(OUTAGE_AFTER_MS);
    const before = await probe();
    expect(before.acked, 'readings acknowledged before the outage').toBeGreaterThan(0);

    // The outage: influxd killed, data and port kept.
    await influxd.kill();
    const tDown = Date.now();
    const during: OutageSample[] = [];
    while (Date.now() - tDown < OUTAGE_MS) {
      during.push(await probe());
      await sleep(250);
    }
    const end = await probe();
    during.push(end);
    await influxd.restart();
    const tUp = Date.now();

    const summary = await run;
    const tRunDone = Date.now();
    const finalMetrics = await scrape(http);

    // Graceful stop: flushes every window and drains the backlog into the store.
    gw.child.kill('SIGTERM');
    const code = await gw.exited;
    const tStopped = Date.now();
    expect(code, gw.output.slice(-20).join('\n')).toBe(0);
    expect(gw.output.filter((l) => l.includes('left in the log')), 'backlog left undelivered at shutdown').toEqual([]);

    // --- ingest kept acknowledging while the store was down
    expect(runProblems(summary)).toEqual([]);
    expect(summary.totals.readings).toBe(RATE * SPAN_S);
    const ackedDuringOutage = end.acked - before.acked;
    const expectedDuringOutage = (RATE * (end.at - before.at)) / 1000;
    expect(ackedDuringOutage, 'PUBACKs during the outage').toBeGreaterThan(0.5 * expectedDuringOutage);
    // ...steadily: every second of the outage acknowledged more readings.
    const sliceProblems: string[] = [];
    for (let i = 0; i + 4 < during.length; i++) {
      const a = during[i]!;
      const b = during[i + 4]!;
      if (b.acked <= a.acked) sliceProblems.push(`no ack between +${a.at - tDown} ms and +${b.at - tDown} ms (${a.acked})`);
    }
    expect(sliceProblems).toEqual([]);

    // --- the backlog grew in the log while the store was down
    const early = during.find((s) => s.at - tDown >= 1000)!;
    expect(end.outboxPending, 'outbox records pending at the end of the outage').toBeGreaterThan(early.outboxPending);
    expect(end.outboxPending).toBeGreaterThanOrEqual(5);
    expect(Math.max(...during.map((s) => s.sinkPending)), 'pulsegate_sink_pending_batches during the outage').toBeGreaterThan(0);
    expect(sample(finalMetrics, 'pulsegate_sink_retries_total', { sink: 'influx' }), 'retried writes').toBeGreaterThan(0);

    // --- bounded memory: the backlog is on disk, not in the heap
    const rssBefore = before.rss!;
    const rssMax = Math.max(...during.map((s) => s.rss ?? 0));
    expect(rssMax - rssBefore, `RSS ${mb(rssBefore)} -> max ${mb(rssMax)} during the outage`).toBeLessThan(RSS_GROWTH_LIMIT);

    // --- every window exactly once, every reading once
    const sink = createInfluxSink({ config: loadConfig({ env: {}, overrides: { dataDir, sinks: { influxUrl: `${influxd.url}/${DATABASE}` } } }).sinks, kinds: createKindRegistry() });
    await sink.start();
    try {
      const devices = Object.keys(summary.byDevice);
      const windows = await storedWindows(sink, 'heart-rate', devices);
      expect(firstLines(heartRateWindowMismatches([summary], windows)), 'heart-rate windows').toBe('');
      const readings = await storedReadings(sink, 'heart-rate', devices);
      expect(firstLines(readingMismatches([summary], readings)), 'heart-rate readings').toBe('');
      expect(readings.length).toBe(summary.totals.readings);
      process.stderr.write(
        `influx outage: ${summary.totals.readings} readings, ${windows.length} windows; ` +
          `acked during the ${tUp - tDown} ms outage: ${ackedDuringOutage} (expected ~${Math.round(expectedDuringOutage)}); ` +
          `outbox pending ${before.outboxPending} -> ${end.outboxPending}; RSS ${mb(rssBefore)} -> max ${mb(rssMax)}; ` +
          `startup ${tReady - t0} ms, run ${tRunDone - tReady} ms, stop ${tStopped - tRunDone} ms, compare ${Date.now() - tStopped} ms\n`,
      );
    } finally {
      await sink.close();
    }
  });
});

function mb(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(1)} MB`;
}
