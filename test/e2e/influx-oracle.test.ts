import { afterAll, describe, expect, it } from 'vitest';
import { createKindRegistry } from '../../gateway/kinds/registry.js';
import { createInfluxSink } from '../../gateway/sinks/influx-sink.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startInfluxd, type InfluxdHandle } from '../helpers/influxd.js';
import { sample, scrape } from '../helpers/metrics.js';
import { expectStoreEqualsFleet, fleetProblems, fleetReadings, runFleet } from '../helpers/oracle-scenario.js';

/**
 * The windows oracle against a real InfluxDB 1.x: the same seeded fleet (oracle-scenario.ts)
 * through a gateway whose store is influxd; after a graceful close the windows and raw readings
 * read back from InfluxDB (through the sink's queries, i.e. InfluxQL on the `windows` and `raw`
 * retention policies) must equal the summaries exactly. Also checks with plain InfluxQL that
 * each window series holds one point per window (the identity overwrote, never added).
 */
const DATABASE = 'pulsegate_e2e';

let influxd: InfluxdHandle | null = null;
let gw: TestGateway | null = null;
afterAll(async () => {
  await gw?.dispose();
  await influxd?.stop();
});

interface InfluxAnswer {
  results?: Array<{ series?: Array<{ tags?: Record<string, string>; columns: string[]; values: unknown[][] }>; error?: string }>;
}

async function influxql(url: string, q: string): Promise<InfluxAnswer> {
  const res = await fetch(`${url}/query?db=${DATABASE}&epoch=ms&q=${encodeURIComponent(q)}`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`InfluxQL ${q}: ${res.status} ${await res.text()}`);
  return (await res.json()) as InfluxAnswer;
}

/** Sum of a count() answer grouped by tags (0 when nothing matched). */
function total(answer: InfluxAnswer): number {
  let n = 0;
  for (const r of answer.results ?? []) {
    if (r.error !== undefined) throw new Error(r.error);
    for (const s of r.series ?? []) for (const v of s.values) n += Number(v[1]);
  }
  return n;
}

describe('influx oracle', () => {
  it('influx oracle should hold exactly the windows and readings the simulators had acknowledged', async () => {
    const t0 = Date.now();
    influxd = await startInfluxd();
    gw = await startTestGateway({ sinks: { influxUrl: `${influxd.url}/${DATABASE}`, flushIntervalMs: 200 } });
    const fleet = await runFleet(gw.ports.mqtt);
    expect(fleetProblems(fleet)).toEqual([]);
    const tRun = Date.now();
    const metrics = await scrape(gw.ports.http);
    expect(sample(metrics, 'pulsegate_late_readings_dropped_total')).toBe(0);
    expect(sample(metrics, 'pulsegate_readings_rejected_total', { reason: 'timestamp_out_of_range' })).toBe(0);

    await gw.close();
    const tClose = Date.now();

    const sink = createInfluxSink({ config: gw.config.sinks, kinds: createKindRegistry() });
    await sink.start();
    try {
      const result = await expectStoreEqualsFleet(sink, fleet);

      // Plain InfluxQL, every device at once: one point per window (a correction overwrote its
      // first emission), and as many raw points as acknowledged readings.
      const hrPoints = total(await influxql(influxd.url, 'SELECT count(bpm_count) FROM "windows"."heart_rate_window" GROUP BY "size"'));
      const brPoints = total(await influxql(influxd.url, 'SELECT count("count") FROM "windows"."bridge_vehicle_window" GROUP BY "size"'));
      expect(hrPoints + brPoints).toBe(result.stats.windows);
      const countSum = total(await influxql(influxd.url, `SELECT sum(bpm_count) FROM "windows"."heart_rate_window" WHERE "size" = '10s'`));
      expect(countSum).toBe(fleet.heartRate.reduce((n, s) => n + s.totals.readings, 0));
      const rawHr = total(await influxql(influxd.url, 'SELECT count(bpm) FROM "raw"."heart_rate"'));
      const rawBr = total(await influxql(influxd.url, 'SELECT count(speed_kmh) FROM "raw"."bridge_vehicle"'));
      expect(rawHr + rawBr).toBe(fleetReadings(fleet));

      process.stderr.write(
        `influx oracle: ${result.stats.readings} readings, ${result.stats.windows} windows (${result.stats.corrected} corrected by late data); ` +
          `influxd+run ${tRun - t0} ms, close ${tClose - tRun} ms, compare ${Date.now() - tClose} ms\n`,
      );
    } finally {
      await sink.close();
    }
  });
});
