import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlertEvent } from '../../../gateway/wire/alert.js';
import { publishSeries, spikeSeries, type SpikeSeries } from '../../helpers/alert-traffic.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { eventually } from '../../helpers/metrics.js';

/**
 * GET /v1/alerts/history on a real gateway (embedded store on the sink thread): a heart-rate spike
 * published over MQTT fires and resolves the built-in rule, and both transitions come back from the
 * store in time order, in the wire format with their log offsets, filtered and bounded as asked.
 */
interface History {
  readonly from: number;
  readonly to: number;
  readonly count: number;
  readonly alerts: AlertEvent[];
}

describe('GET /v1/alerts/history', () => {
  let gw: TestGateway;
  let series: SpikeSeries;
  let base = '';
  const get = async (query: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${base}/v1/alerts/history?${query}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const history = async (query: string): Promise<History> => {
    const { status, body } = await get(query);
    expect(status, JSON.stringify(body)).toBe(200);
    return body as unknown as History;
  };

  beforeAll(async () => {
    gw = await startTestGateway({ sinks: { flushIntervalMs: 50 } });
    base = `http://127.0.0.1:${gw.ports.http}`;
    series = spikeSeries(Date.now() - 600_000);
    await publishSeries(gw.ports.mqtt, 'athlete-7', series);
  });
  afterAll(async () => {
    await gw?.dispose();
  });

  it('should answer the FIRING and the RESOLVED of an episode in time order, wire format with offsets', async () => {
    const found = await eventually(
      () => history(`from=${series.episodeStart}&rule=heart-rate-spike`),
      (h) => h.count === 2,
    );
    expect(found.alerts.map((a) => [a.state, a.firedAt, a.resolvedAt])).toEqual([
      ['FIRING', series.firedAt, null],
      ['RESOLVED', series.firedAt, series.resolvedAt],
    ]);
    const [fired, resolved] = found.alerts as [AlertEvent, AlertEvent];
    expect(fired).toMatchObject({ v: 1, rule: 'heart-rate-spike', ruleKind: 'threshold', severity: 'critical', kind: 'heart-rate', deviceId: 'athlete-7', group: {}, value: 210, threshold: 200, episodeStart: series.episodeStart });
    expect(resolved.id).toBe(fired.id);
    expect(resolved).toMatchObject({ value: 80, threshold: 190, windowStart: series.resolvedAt - 10_000, windowEnd: series.resolvedAt });
    // The offsets of their log records: the FIRING's first.
    expect(fired.offset).toBeGreaterThanOrEqual(0);
    expect(resolved.offset).toBeGreaterThan(fired.offset);
    expect(Object.keys(fired)).toEqual(['v', 'id', 'rule', 'ruleKind', 'severity', 'state', 'kind', 'deviceId', 'group', 'value', 'threshold', 'windowStart', 'windowEnd', 'episodeStart', 'firedAt', 'resolvedAt', 'summary', 'offset']);
    // Resolved: not among the alerts firing now.
    const now = (await (await fetch(`${base}/v1/alerts?rule=heart-rate-spike`)).json()) as { count: number };
    expect(now.count).toBe(0);
  });

  it('should bound [from, to) by firedAt / resolvedAt and filter by kind, device glob, rule, severity and limit', async () => {
    await eventually(() => history(`from=${series.episodeStart}&rule=heart-rate-spike`), (h) => h.count === 2);
    const states = async (query: string): Promise<string[]> => (await history(query)).alerts.filter((a) => a.rule === 'heart-rate-spike').map((a) => a.state);
    expect(await states(`from=${series.firedAt}&to=${series.resolvedAt}`)).toEqual(['FIRING']);
    expect(await states(`from=${series.firedAt + 1}&to=${series.resolvedAt + 1}`)).toEqual(['RESOLVED']);
    expect(await states(`from=${series.episodeStart}&to=${series.firedAt}`)).toEqual([]);
    expect(await states(`from=${series.episodeStart}&device=athlete-*`)).toEqual(['FIRING', 'RESOLVED']);
    expect(await states(`from=${series.episodeStart}&device=athlete-?`)).toEqual(['FIRING', 'RESOLVED']);
    expect(await states(`from=${series.episodeStart}&device=athlete`)).toEqual([]);
    expect(await states(`from=${series.episodeStart}&kind=bridge`)).toEqual([]);
    expect(await states(`from=${series.episodeStart}&kind=heart-rate&severity=critical`)).toEqual(['FIRING', 'RESOLVED']);
    expect(await states(`from=${series.episodeStart}&severity=warning`)).toEqual([]);
    expect(await states(`from=${series.episodeStart}&rule=heart-rate-spike&limit=1`)).toEqual(['FIRING']);
    const all = await history(`from=${series.episodeStart}&to=now`);
    expect(all.from).toBe(series.episodeStart);
    expect(all.count).toBe(all.alerts.length);
    // The default range is the last day.
    const day = await history('rule=heart-rate-spike');
    expect(day.to - day.from).toBe(86_400_001);
    expect(day.count).toBe(2);
  });

  it('should refuse unknown, repeated and malformed parameters with 400 naming them', async () => {
    for (const [query, word] of [
      ['devcie=athlete-7', 'devcie'],
      ['rule=a&rule=b', 'rule'],
      ['severity=fatal', 'severity'],
      ['kind=toaster', 'kind'],
      ['from=10&to=5', 'from'],
      ['from=yesterday', 'from'],
      ['limit=0', 'limit'],
      ['limit=1e3', 'limit'],
    ] as const) {
      const { status, body } = await get(query);
      expect(status, query).toBe(400);
      expect(body.error, query).toBe('GW_ERR_QUERY_INVALID');
      expect(String(body.message), query).toContain(word);
    }
  });
});
