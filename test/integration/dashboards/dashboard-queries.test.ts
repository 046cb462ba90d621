import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createInfluxSink } from '../../../gateway/sinks/influx-sink.js';
import type { HealthSample, Sink, SinkBatch } from '../../../gateway/sinks/types.js';
import type { WindowResult } from '../../../gateway/window/types.js';
import { MAX_QUERY_TIME_MS } from '../../../gateway/http/query-params.js';
import type { AlertEvent } from '../../../gateway/wire/alert.js';
import { bridgeSeries, heartRateSeries, publishSeries } from '../../helpers/alert-traffic.js';
import { startTestGateway } from '../../helpers/gateway.js';
import { startInfluxd, type InfluxdHandle } from '../../helpers/influxd.js';
import { eventually } from '../../helpers/metrics.js';
import { baseSinksConfig, bridgeReading, bridgeWindow, heartRateReading, heartRateWindow } from '../sinks/sink-contract.js';

/*
 * Every query of every provisioned dashboard (panel targets, annotations and template variables)
 * runs against a real InfluxDB filled by the InfluxDB sink with realistic data, and with the
 * alerts a real gateway raised from readings published over MQTT, with Grafana's macros expanded
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
interface Annotation {
  readonly name: string;
  readonly query: string;
  readonly textColumn?: string;
  readonly tagsColumn?: string;
  readonly datasource?: { readonly uid?: string; readonly type?: string };
}
interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly Variable[] };
  readonly annotations: { readonly list: readonly Annotation[] };
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
  /** Column names of the first series. */
  readonly columns: string[];
  /** The rows as column -> value. */
  readonly records: Array<Record<string, unknown>>;
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
  if (body.error !== undefined) return { error: body.error, columns: [], records: [], rows: 0, values: [], tags: [] };
  let rows = 0;
  const values: unknown[] = [];
  const tags: Array<Record<string, string>> = [];
  const records: Array<Record<string, unknown>> = [];
  let columns: string[] = [];
  for (const result of body.results ?? []) {
    if (result.error !== undefined) return { error: result.error, columns: [], records: [], rows: 0, values: [], tags: [] };
    for (const series of result.series ?? []) {
      if (series.tags !== undefined) tags.push(series.tags);
      if (columns.length === 0) columns = series.columns;
      for (const row of series.values) {
        records.push(Object.fromEntries(series.columns.map((c, i) => [c, row[i]])));
        const data = row.filter((_, i) => series.columns[i] !== 'time');
        if (data.some((v) => v !== null)) rows++;
        values.push(...data);
      }
    }
  }
  return { error: null, columns, records, rows, values, tags };
}

/**
 * Alert traffic for a real gateway: on every device of the dashboards, an episode of the built-in
 * rule that fires and resolves, then one that fires and is still firing at the end.
 */
async function raiseAlerts(now: number): Promise<void> {
  const gw = await startTestGateway({ sinks: { influxUrl: `${influxd.url}/${DATABASE}`, flushIntervalMs: 50 } });
  try {
    const start = now - 20 * 60_000;
    for (const athlete of ATHLETES) await publishSeries(gw.ports.mqtt, athlete, heartRateSeries(start, [80, 80, 80, 210, 210, 80, 80, 210, 210]));
    for (const bridge of BRIDGES) await publishSeries(gw.ports.mqtt, bridge, bridgeSeries(start, [30, 2, 30]));
    // Two FIRING and one RESOLVED per device, in the store (the gateway's history reads InfluxDB).
    await eventually(
      async () => ((await (await fetch(`http://127.0.0.1:${gw.ports.http}/v1/alerts/history?from=${start - 60_000}`)).json()) as { alerts: AlertEvent[] }).alerts,
      (alerts) => [...ATHLETES, ...BRIDGES].every((d) => alerts.filter((a) => a.deviceId === d && a.ruleKind === 'threshold').length === 3),
      30_000,
    );
  } finally {
    await gw.dispose();
  }
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
/** Every alert transition in the store once the gateway stopped (read through the sink: the oracle). */
let storedAlerts: AlertEvent[] = [];
/** Values every query variable can take; the chosen single value is the first. */
const variableValues: Record<string, readonly string[]> = {};

beforeAll(async () => {
  influxd = await startInfluxd();
  const sink: Sink = createInfluxSink({ config: baseSinksConfig({ influxUrl: `${influxd.url}/${DATABASE}` }), kinds: createKindRegistry() });
  await sink.start();
  const now = Date.now();
  for (const batch of testData(now)) await sink.write(batch);
  await raiseAlerts(now);
  storedAlerts = await sink.queryAlerts({ from: 0, to: MAX_QUERY_TIME_MS, limit: 10_000 });
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
}, 120_000);

/** The devices a dashboard's alert queries cover for one choice of its variables (all kinds on the health dashboard). */
function alertScope(dashboard: Dashboard, vars: Readonly<Record<string, readonly string[]>>): (a: AlertEvent) => boolean {
  if (dashboard.uid.includes('heart-rate')) return (a) => a.kind === 'heart-rate' && vars['athlete']!.includes(a.deviceId);
  if (dashboard.uid.includes('bridge')) return (a) => a.kind === 'bridge' && vars['bridge']!.includes(a.deviceId);
  return () => true;
}

/** Episodes whose last transition is a FIRING. */
function firingNow(alerts: readonly AlertEvent[]): AlertEvent[] {
  const resolved = new Set(alerts.filter((a) => a.state === 'RESOLVED').map((a) => a.id));
  return alerts.filter((a) => a.state === 'FIRING' && !resolved.has(a.id));
}

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

describe.each(dashboards)('alerts on dashboard $file', ({ dashboard }) => {
  const single = (): Record<string, readonly string[]> => Object.fromEntries(Object.entries(variableValues).map(([k, v]) => [k, v.slice(0, 1)]));
  const annotations = dashboard.annotations.list.map((a) => ({ name: a.name, annotation: a }));

  it('should mark FIRING and RESOLVED transitions with annotations and have a "firing now" table', () => {
    expect(annotations.map((a) => a.name)).toEqual(expect.arrayContaining(['Alerts fired', 'Alerts resolved']));
    expect(panelsOf(dashboard.panels).filter((p) => p.title === 'Alerts firing now' && p.type === 'table')).toHaveLength(1);
  });

  it.each(annotations)('annotation "$name" should return exactly the transitions the gateway stored, for one value and for All', ({ annotation }) => {
    return (async () => {
      expect(annotation.datasource?.uid).toBe('pulsegate');
      const state = annotation.name === 'Alerts fired' ? 'FIRING' : 'RESOLVED';
      for (const vars of [single(), variableValues]) {
        const query = interpolate(annotation.query, vars, range);
        expect(query, 'every Grafana variable is expanded').not.toMatch(/\$(?!\/)[{[\w]/);
        const outcome = await run(query);
        expect(outcome.error, query).toBeNull();
        const expected = storedAlerts.filter((a) => a.state === state && a.firedAt >= range.from && alertScope(dashboard, vars)(a));
        expect(expected.length, 'the gateway raised alerts for this dashboard').toBeGreaterThan(0);
        expect(outcome.records.map((r) => r[annotation.textColumn!]).sort(), query).toEqual(expected.map((a) => a.summary).sort());
        for (const column of (annotation.tagsColumn ?? '').split(',')) expect(outcome.columns, `tagsColumn ${column}`).toContain(column);
      }
    })();
  });

  const firingPanel = panelsOf(dashboard.panels).find((p) => p.title === 'Alerts firing now');
  it('panel "Alerts firing now" should list exactly the episodes still firing, for one value and for All', async () => {
    expect(firingPanel).toBeDefined();
    for (const vars of [single(), variableValues]) {
      const query = interpolate(firingPanel!.targets![0]!.query, vars, range);
      const outcome = await run(query);
      expect(outcome.error, query).toBeNull();
      const expected = firingNow(storedAlerts).filter(alertScope(dashboard, vars));
      expect(expected.length, 'some episodes are still firing').toBeGreaterThan(0);
      expect(outcome.records.map((r) => [r['rule'], r['device'], r['severity'], r['fired_at'], r['summary']]).sort(), query).toEqual(expected.map((a) => [a.rule, a.deviceId, a.severity, a.firedAt, a.summary]).sort());
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
