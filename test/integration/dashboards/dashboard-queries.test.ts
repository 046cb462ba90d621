import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createInfluxSink } from '../../../gateway/sinks/influx-sink.js';
import type { HealthSample, Sink, SinkBatch } from '../../../gateway/sinks/types.js';
import type { WindowResult } from '../../../gateway/window/types.js';
import { startInfluxd, type InfluxdHandle } from '../../helpers/influxd.js';
import { baseSinksConfig, bridgeReading, bridgeWindow, heartRateReading, heartRateWindow } from '../sinks/sink-contract.js';

/*
 * Every query of every provisioned dashboard (panel targets and template variables) runs against
 * a real InfluxDB filled by the InfluxDB sink with realistic data, with Grafana's macros expanded
 * the way Grafana expands them. A misspelled field, tag, measurement or retention policy returns
 * no rows, and the test fails naming the panel.
 */
const DASHBOARDS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../dashboards');
const DATABASE = 'pulsegate';
const ATHLETES = ['athlete-1', 'athlete-2'];
const BRIDGES = ['bridge-north', 'bridge-south'];
const CLASSES = ['CAR', 'TRUCK', 'BUS'];
const MINUTES = 50;

interface Target {
  readonly refId: string;
  readonly query: string;
  readonly alias?: string;
  readonly rawQuery?: boolean;
  readonly datasource?: { readonly uid?: string; readonly type?: string };
}
interface Panel {
  readonly title: string;
  readonly type: string;
  readonly targets?: readonly Target[];
  readonly panels?: readonly Panel[];
  readonly datasource?: { readonly uid?: string };
}
interface Variable {
  readonly name: string;
  readonly type: string;
  readonly query: string;
  readonly current?: { readonly value?: string };
  readonly includeAll?: boolean;
}
interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly Variable[] };
}

const files = readdirSync(DASHBOARDS_DIR).filter((f) => f.endsWith('.json'));
const dashboards = files.map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(DASHBOARDS_DIR, file), 'utf8')) as Dashboard }));

function panelsOf(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);
}
const targets = dashboards.flatMap(({ file, dashboard }) =>
  panelsOf(dashboard.panels).flatMap((panel) => (panel.targets ?? []).map((target) => ({ file, dashboard, panel, target }))),
);

/** What Grafana's InfluxDB data source does to a value inside a regex: escape regex metacharacters. */
function escapeRegex(value: string): string {
  return value.replace(/[\\^$*+?.()|[\]{}/]/g, '\\$&');
}

/** Grafana macro and variable expansion, for one choice of the query variables' values. */
function interpolate(query: string, variables: Readonly<Record<string, readonly string[]>>, range: { from: number; to: number }): string {
  let q = query
    .replaceAll('$timeFilter', `time >= ${range.from}ms and time <= ${range.to}ms`)
    .replaceAll('$__interval', '10s')
    .replaceAll('${__interval}', '10s');
  for (const [name, values] of Object.entries(variables)) {
    // Multi-value or "All" in a regex becomes (a|b), as Grafana formats it.
    const regex = values.length === 1 ? escapeRegex(values[0]!) : `(${values.map(escapeRegex).join('|')})`;
    q = q.replace(new RegExp(`/\\^(\\$${name}|\\$\\{${name}\\}|\\[\\[${name}\\]\\])\\$/`, 'g'), () => `/^${regex}$/`);
    q = q.replace(new RegExp(`\\$${name}\\b|\\$\\{${name}\\}|\\[\\[${name}\\]\\]`, 'g'), () => values[0]!);
  }
  return q;
}

interface QueryOutcome {
  readonly error: string | null;
  /** Rows with at least one non-null value besides time. */
  readonly rows: number;
  readonly values: unknown[];
  /** Tag sets of the series (GROUP BY); a tag key that does not exist comes back as "". */
  readonly tags: Array<Record<string, string>>;
}

let influxd: InfluxdHandle;

async function run(query: string): Promise<QueryOutcome> {
  const res = await fetch(`${influxd.url}/query?db=${DATABASE}&epoch=ms&q=${encodeURIComponent(query)}`);
  const body = (await res.json()) as {
    error?: string;
    results?: Array<{ error?: string; series?: Array<{ columns: string[]; values: unknown[][]; tags?: Record<string, string> }> }>;
  };
  if (body.error !== undefined) return { error: body.error, rows: 0, values: [], tags: [] };
  let rows = 0;
  const values: unknown[] = [];
  const tags: Array<Record<string, string>> = [];
  for (const result of body.results ?? []) {
    if (result.error !== undefined) return { error: result.error, rows: 0, values: [], tags: [] };
    for (const series of result.series ?? []) {
      if (series.tags !== undefined) tags.push(series.tags);
      for (const row of series.values) {
        const data = row.filter((_, i) => series.columns[i] !== 'time');
        if (data.some((v) => v !== null)) rows++;
        values.push(...data);
      }
    }
  }
  return { error: null, rows, values, tags };
}

function testData(now: number): SinkBatch[] {
  const end = Math.floor(now / 60_000) * 60_000;
  const start = end - MINUTES * 60_000;
  const windows: WindowResult[] = [];
  const health: HealthSample[] = [];
  const readings = [];
  for (const [a, athlete] of ATHLETES.entries()) {
    for (let t = start, i = 0; t < end; t += 10_000, i++) {
      // The mean sweeps 95..184 bpm, so every heart-rate zone gets time.
      const mean = 95 + ((i * 3 + a * 7) % 90);
      windows.push(heartRateWindow(athlete, t, 10_000, [mean - 4, mean, mean + 4]));
      if (t % 60_000 === 0) windows.push(heartRateWindow(athlete, t, 60_000, [mean - 10, mean, mean + 10]));
      readings.push(heartRateReading(athlete, i, t + 200, mean));
    }
  }
  for (const [b, bridge] of BRIDGES.entries()) {
    for (let t = start, i = 0; t < end; t += 60_000, i++) {
      for (const [c, vehicleClass] of CLASSES.entries()) {
        for (const lane of [1, 2]) {
          const count = 1 + ((i + b + c * 2 + lane) % (vehicleClass === 'CAR' ? 20 : 5));
          windows.push(bridgeWindow(bridge, t, 60_000, vehicleClass, lane, count, vehicleClass === 'TRUCK' ? 72 : 88));
        }
      }
      readings.push(bridgeReading(bridge, i, t + 1_500, 1 + (i % 2), CLASSES[i % 3]!, 80 + (i % 20)));
    }
  }
  for (let t = start; t < end; t += 5_000) {
    const k = (t - start) / 5_000;
    health.push({
      ts: t,
      values: { readings_per_s: 500 + (k % 40), rejected_per_s: k % 7 === 0 ? 1.5 : 0, duplicates_per_s: k % 11 === 0 ? 0.4 : 0, log_backlog_records: k % 30, sink_lag_ms: (k % 30) * 250, heap_mb: 60 + (k % 9) },
    });
  }
  return [
    { readings, windows: [], health: [] },
    { readings: [], windows, health: [] },
    { readings: [], windows: [], health },
  ];
}

const range = { from: 0, to: 0 };
/** Values every query variable can take; the chosen single value is the first. */
const variableValues: Record<string, readonly string[]> = {};

beforeAll(async () => {
  influxd = await startInfluxd();
  const sink: Sink = createInfluxSink({ config: baseSinksConfig({ influxUrl: `${influxd.url}/${DATABASE}` }), kinds: createKindRegistry() });
  await sink.start();
  const now = Date.now();
  for (const batch of testData(now)) await sink.write(batch);
  await sink.close();
  range.from = now - 3_600_000;
  range.to = now;
  for (const { dashboard } of dashboards) {
    for (const variable of dashboard.templating.list) {
      if (variable.type === 'custom' && variable.current?.value !== undefined) variableValues[variable.name] = [variable.current.value];
    }
  }
  variableValues['athlete'] = ATHLETES;
  variableValues['bridge'] = BRIDGES;
});

afterAll(async () => {
  await influxd?.stop();
});

describe('Grafana provisioning', () => {
  it('should define the PulseGate InfluxQL data source on http://127.0.0.1:8086, database pulsegate', () => {
    const doc = parseYaml(readFileSync(join(DASHBOARDS_DIR, 'provisioning/datasources/pulsegate.yaml'), 'utf8')) as {
      datasources: Array<Record<string, unknown> & { jsonData?: Record<string, unknown> }>;
    };
    expect(doc.datasources).toHaveLength(1);
    expect(doc.datasources[0]).toMatchObject({ name: 'PulseGate', uid: 'pulsegate', type: 'influxdb', url: 'http://127.0.0.1:8086', database: DATABASE, jsonData: { dbName: DATABASE } });
  });

  it('should load the dashboards folder through a file provider', () => {
    const doc = parseYaml(readFileSync(join(DASHBOARDS_DIR, 'provisioning/dashboards/pulsegate.yaml'), 'utf8')) as { providers: Array<{ type: string; options: { path: string } }> };
    expect(doc.providers[0]).toMatchObject({ type: 'file', options: { path: expect.any(String) } });
  });

  it('should have at least three dashboards with unique uids, every target a raw InfluxQL query on the PulseGate data source', () => {
    expect(dashboards.length).toBeGreaterThanOrEqual(3);
    expect(new Set(dashboards.map((d) => d.dashboard.uid)).size).toBe(dashboards.length);
    expect(targets.length).toBeGreaterThanOrEqual(15);
    for (const { file, panel, target } of targets) {
      expect(target.rawQuery, `${file} / ${panel.title}`).toBe(true);
      expect(target.datasource?.uid ?? panel.datasource?.uid, `${file} / ${panel.title}`).toBe('pulsegate');
    }
  });
});

describe.each(dashboards)('dashboard $file', ({ dashboard }) => {
  const queryVariables = dashboard.templating.list.filter((v) => v.type === 'query');
  if (queryVariables.length > 0) {
    it.each(queryVariables.map((v) => ({ name: v.name, variable: v })))('variable $name should list the devices written', async ({ variable }) => {
      const outcome = await run(interpolate(variable.query, variableValues, range));
      expect(outcome.error).toBeNull();
      const expected = variable.name === 'athlete' ? ATHLETES : variable.name === 'bridge' ? BRIDGES : [];
      expect(outcome.values).toEqual(expect.arrayContaining(expected));
      expect(outcome.rows).toBeGreaterThan(0);
    });
  }

  const panelTargets = targets.filter((t) => t.dashboard === dashboard).map((t) => ({ name: `${t.panel.title} [${t.target.refId}]`, ...t }));
  it.each(panelTargets)('panel "$name" should return rows for one value and for All', async ({ target }) => {
    const single = Object.fromEntries(Object.entries(variableValues).map(([k, v]) => [k, v.slice(0, 1)]));
    for (const vars of [single, variableValues]) {
      const query = interpolate(target.query, vars, range);
      expect(query, 'every Grafana variable is expanded').not.toMatch(/\$(?!\/)[{[\w]/);
      const outcome = await run(query);
      expect(outcome.error, query).toBeNull();
      expect(outcome.rows, query).toBeGreaterThan(0);
      // GROUP BY a tag key that does not exist still returns rows, under an empty tag value.
      for (const tags of outcome.tags) {
        for (const [key, value] of Object.entries(tags)) expect(value, `tag "${key}" of ${query}`).not.toBe('');
      }
      // A legend alias $tag_x needs x among the GROUP BY tags.
      for (const [, key] of (target.alias ?? '').matchAll(/\$tag_(\w+)/g)) {
        expect(outcome.tags.length, `alias ${target.alias}`).toBeGreaterThan(0);
        for (const tags of outcome.tags) expect(Object.keys(tags), `alias ${target.alias}`).toContain(key);
      }
    }
  });
});

describe('dashboard query check', () => {
  it('should report no rows for a query with a misspelled field, and an error for bad syntax', async () => {
    const good = targets.find((t) => t.target.query.includes('"bpm_max"'));
    expect(good).toBeDefined();
    const query = interpolate(good!.target.query, variableValues, range);
    expect((await run(query)).rows).toBeGreaterThan(0);
    expect((await run(query.replaceAll('"bpm_max"', '"bpm_maxx"').replaceAll('"bpm_min"', '"bpm_minn"').replaceAll('"bpm_sum"', '"bpm_summ"'))).rows).toBe(0);
    expect((await run(query.replace('WHERE', 'WHER'))).error).not.toBeNull();
  });
});
