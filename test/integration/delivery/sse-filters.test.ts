import { afterEach, describe, expect, it } from 'vitest';
import type { AlertTransition } from '../../../gateway/wire/alert.js';
import { SEVERITIES } from '../../../gateway/wire/alert.js';
import { mulberry32 } from '../../helpers/random.js';
import { openSse, type RawSseClient } from '../../helpers/sse-client.js';
import { waitFor } from '../../helpers/wait.js';
import { KINDS, RULES, randomAlert, startHub, type Hub } from './hub-harness.js';

let hub: Hub | null = null;
afterEach(async () => {
  await hub?.close();
  hub = null;
});

// ---- an independent, brute-force model of the filters ----

type Lit = string | number | null;
type Expr =
  | { t: 'and' | 'or'; a: Expr; b: Expr }
  | { t: 'not'; a: Expr }
  | { t: 'cmp'; f: string; op: '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='; v: Lit }
  | { t: 'in'; f: string; vs: Lit[]; neg: boolean }
  | { t: 'between'; f: string; lo: number; hi: number; neg: boolean }
  | { t: 'like'; f: string; p: string; neg: boolean }
  | { t: 'null'; f: string; neg: boolean };

const STRING_POOL: Record<string, string[]> = {
  kind: [...KINDS, 'x'],
  deviceId: ['hr-1', 'hr-2', 'br-0', 'br-5', 'zz'],
  rule: [...RULES],
  severity: [...SEVERITIES],
  state: ['FIRING', 'RESOLVED'],
  vehicleClass: ['CAR', 'TRUCK', 'BUS'],
  lane: ['1', '2', '3'],
};
const NUMBER_FIELDS = ['value', 'threshold', 'offset', 'episodeStart'];
const FIELDS = [...Object.keys(STRING_POOL), ...NUMBER_FIELDS, 'nosuchfield'];

function fieldsOf(t: AlertTransition, offset: number): Record<string, string | number | null> {
  return { ...t.group, kind: t.kind, deviceId: t.deviceId, rule: t.rule, severity: t.severity, state: t.state, value: t.value, threshold: t.threshold, offset, episodeStart: t.episodeStart };
}

function randomLit(rand: () => number, f: string): Lit {
  const r = rand();
  if (r < 0.05) return null;
  const pool = STRING_POOL[f];
  // Now and then a literal of the other type: unknown, never a match.
  if (pool !== undefined && r > 0.1) return pool[Math.floor(rand() * pool.length)]!;
  if (f === 'offset') return Math.floor(rand() * 400);
  if (f === 'episodeStart') return 1_700_000_000_000 + Math.floor(rand() * 400) * 1000;
  if (pool !== undefined) return Math.floor(rand() * 100);
  return r < 0.15 ? 'abc' : Math.round(rand() * 2000) / 10;
}

function randomExpr(rand: () => number, depth: number): Expr {
  const f = FIELDS[Math.floor(rand() * FIELDS.length)]!;
  const r = rand();
  if (depth < 3 && r < 0.35) return { t: rand() < 0.5 ? 'and' : 'or', a: randomExpr(rand, depth + 1), b: randomExpr(rand, depth + 1) };
  if (depth < 3 && r < 0.45) return { t: 'not', a: randomExpr(rand, depth + 1) };
  const k = rand();
  if (k < 0.45) return { t: 'cmp', f, op: (['=', '!=', '<>', '<', '<=', '>', '>='] as const)[Math.floor(rand() * 7)]!, v: randomLit(rand, f) };
  if (k < 0.6) return { t: 'in', f, vs: Array.from({ length: 1 + Math.floor(rand() * 3) }, () => randomLit(rand, f)), neg: rand() < 0.4 };
  if (k < 0.72) {
    const a = Math.round(rand() * 1500) / 10;
    return { t: 'between', f: NUMBER_FIELDS[Math.floor(rand() * 2)]!, lo: a, hi: a + Math.round(rand() * 800) / 10, neg: rand() < 0.3 };
  }
  if (k < 0.88) {
    const pool = STRING_POOL[f] ?? ['hr-1'];
    const s = pool[Math.floor(rand() * pool.length)]!;
    const p = rand() < 0.5 ? `${s.slice(0, 1 + Math.floor(rand() * s.length))}%` : s.replace(/[0-9]/, '_');
    return { t: 'like', f, p, neg: rand() < 0.3 };
  }
  return { t: 'null', f, neg: rand() < 0.5 };
}

const sqlLit = (v: Lit): string => (v === null ? 'NULL' : typeof v === 'number' ? String(v) : `'${v}'`);
function render(e: Expr): string {
  switch (e.t) {
    case 'and':
    case 'or':
      return `(${render(e.a)}) ${e.t.toUpperCase()} (${render(e.b)})`;
    case 'not':
      return `NOT (${render(e.a)})`;
    case 'cmp':
      return `${e.f} ${e.op} ${sqlLit(e.v)}`;
    case 'in':
      return `${e.f} ${e.neg ? 'NOT IN' : 'IN'} (${e.vs.map(sqlLit).join(', ')})`;
    case 'between':
      return `${e.f} ${e.neg ? 'NOT BETWEEN' : 'BETWEEN'} ${e.lo} AND ${e.hi}`;
    case 'like':
      return `${e.f} ${e.neg ? 'NOT LIKE' : 'LIKE'} '${e.p}'`;
    case 'null':
      return `${e.f} IS ${e.neg ? 'NOT ' : ''}NULL`;
  }
}

type Tri = boolean | null;
function cmp(a: Lit | undefined, b: Lit): number | null {
  if (a === undefined || a === null || b === null || typeof a !== typeof b) return null;
  return a === b ? 0 : a < b ? -1 : 1;
}
function evaluate(e: Expr, r: Record<string, string | number | null>): Tri {
  const x = 'f' in e ? r[e.f] : undefined;
  switch (e.t) {
    case 'and': {
      const a = evaluate(e.a, r);
      const b = evaluate(e.b, r);
      return a === false || b === false ? false : a === null || b === null ? null : true;
    }
    case 'or': {
      const a = evaluate(e.a, r);
      const b = evaluate(e.b, r);
      return a === true || b === true ? true : a === null || b === null ? null : false;
    }
    case 'not': {
      const a = evaluate(e.a, r);
      return a === null ? null : !a;
    }
    case 'cmp': {
      const c = cmp(x, e.v);
      if (c === null) return null;
      return { '=': c === 0, '!=': c !== 0, '<>': c !== 0, '<': c < 0, '<=': c <= 0, '>': c > 0, '>=': c >= 0 }[e.op];
    }
    case 'in': {
      const cs = e.vs.map((v) => cmp(x, v));
      if (cs.includes(0)) return !e.neg;
      return cs.includes(null) ? null : e.neg;
    }
    case 'between': {
      const lo = cmp(x, e.lo);
      const hi = cmp(x, e.hi);
      if (lo === null || hi === null) return null;
      const inside = lo >= 0 && hi <= 0;
      return e.neg ? !inside : inside;
    }
    case 'like': {
      if (typeof x !== 'string') return null;
      const re = new RegExp(`^${e.p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/%/g, '.*').replace(/_/g, '.')}$`);
      return re.test(x) !== e.neg;
    }
    case 'null':
      return (x === undefined || x === null) !== e.neg;
  }
}

interface Spec {
  kinds: string[];
  devices: string[];
  rules: string[];
  minSeverity: string | null;
  where: Expr | null;
}

const globRe = (g: string): RegExp => new RegExp(`^${g.replace(/[.+^${}()|[\]\\-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
function specMatches(s: Spec, t: AlertTransition, offset: number): boolean {
  if (s.kinds.length > 0 && !s.kinds.includes(t.kind)) return false;
  if (s.devices.length > 0 && !s.devices.some((d) => globRe(d).test(t.deviceId))) return false;
  if (s.rules.length > 0 && !s.rules.includes(t.rule)) return false;
  if (s.minSeverity !== null && SEVERITIES.indexOf(t.severity) < SEVERITIES.indexOf(s.minSeverity as never)) return false;
  return s.where === null || evaluate(s.where, fieldsOf(t, offset)) === true;
}

function randomSpec(rand: () => number): Spec {
  const some = <T>(pool: readonly T[], p: number): T[] => (rand() < p ? pool.filter(() => rand() < 0.5) : []);
  return {
    kinds: some(KINDS, 0.4),
    devices: some(['hr-1', 'hr-*', 'br-?', '*-3', 'br-0'], 0.4),
    rules: some(RULES, 0.4),
    minSeverity: rand() < 0.4 ? SEVERITIES[Math.floor(rand() * 3)]! : null,
    where: rand() < 0.7 ? randomExpr(rand, 0) : null,
  };
}

function query(s: Spec): string {
  const p = new URLSearchParams();
  if (s.kinds.length > 0) p.set('kind', s.kinds.join(','));
  if (s.devices.length > 0) p.set('device', s.devices.join(','));
  if (s.rules.length > 0) p.set('rule', s.rules.join(','));
  if (s.minSeverity !== null) p.set('minSeverity', s.minSeverity);
  if (s.where !== null) p.set('where', render(s.where));
  return p.toString();
}

const STATIC: Record<string, Spec & { whereSql: string | null }> = {
  trucks: { kinds: ['bridge'], devices: [], rules: [], minSeverity: null, where: { t: 'cmp', f: 'vehicleClass', op: '=', v: 'TRUCK' }, whereSql: "vehicleClass = 'TRUCK'" },
  ward: { kinds: ['heart_rate'], devices: ['hr-1*', 'hr-3'], rules: ['hr_high', 'hr_low'], minSeverity: 'warning', where: null, whereSql: null },
};

describe('SSE filters', () => {
  it('static, dynamic and where= filters deliver exactly what a brute-force evaluation selects, live and replayed (seeded)', async () => {
    const streams = Object.fromEntries(
      Object.entries(STATIC).map(([name, s]) => [name, { source: 'alerts', kinds: s.kinds, devices: s.devices, rules: s.rules, minSeverity: s.minSeverity, where: s.whereSql }]),
    );
    hub = await startHub({ delivery: { streams } });
    const h = hub;
    const rand = mulberry32(20261202);
    await h.appendOther();
    const specs = Array.from({ length: 40 }, () => randomSpec(rand));
    const subs: { path: string; match: (t: AlertTransition, o: number) => boolean }[] = specs.map((s) => ({ path: `/v1/streams/alerts?${query(s)}`, match: (t, o) => specMatches(s, t, o) }));
    for (const [name, st] of Object.entries(STATIC)) {
      subs.push({ path: `/v1/streams/${name}`, match: (t, o) => specMatches(st, t, o) });
      // A static stream narrowed further by the client (never widened).
      const narrow = randomSpec(rand);
      subs.push({ path: `/v1/streams/${name}?${query(narrow)}`, match: (t, o) => specMatches(st, t, o) && specMatches(narrow, t, o) });
    }
    const live: RawSseClient[] = [];
    for (const s of subs) {
      const c = await openSse(h.url(s.path));
      expect(c.status, `${s.path}: ${await (c.status === 200 ? '' : c.body)}`).toBe(200);
      live.push(c);
    }
    const events: { t: AlertTransition; offset: number }[] = [];
    for (let i = 0; i < 300; i++) {
      const t = randomAlert(rand, i);
      events.push({ t, offset: await h.appendAlert(t) });
    }
    const marker = await h.appendAlert({ ...randomAlert(rand, 999), kind: 'marker', deviceId: 'end' });
    const replayed: RawSseClient[] = [];
    for (const s of subs) replayed.push(await openSse(h.url(s.path), { 'last-event-id': '0' }));
    // Every stream has read past the last event once the log's follower passed the marker and each replay reached the head.
    await waitFor(() => h.hub.position > marker && replayed.every((c) => c.events.some((e) => e.event === 'live')), { what: 'replays done' });
    const ids = (c: RawSseClient): number[] => c.events.filter((e) => e.event === 'alert' && Number(e.id) !== marker).map((e) => Number(e.id));
    let nonEmpty = 0;
    for (const [i, s] of subs.entries()) {
      const want = events.filter((e) => s.match(e.t, e.offset)).map((e) => e.offset);
      if (want.length > 0) nonEmpty += 1;
      expect(ids(replayed[i]!), `replay ${s.path}`).toEqual(want);
      // Written before the marker was; still on its way through loopback maybe.
      await waitFor(() => ids(live[i]!).length >= want.length, { what: `live ${s.path}`, timeoutMs: 5000 }).catch(() => undefined);
      expect(ids(live[i]!), `live ${s.path}`).toEqual(want);
    }
    // The seed must make the check mean something: most filters select some events, and not all.
    expect(nonEmpty).toBeGreaterThan(subs.length / 3);
    for (const c of [...live, ...replayed]) c.close();

    // Long-poll applies the same filters.
    const s = specs.find((x) => events.some((e) => specMatches(x, e.t, e.offset)))!;
    const res = await fetch(h.url(`/v1/alerts/poll?after=0&limit=1000&${query(s)}`));
    const body = (await res.json()) as { events: { offset: number }[] };
    expect(body.events.map((e) => e.offset).filter((o) => o !== marker)).toEqual(events.filter((e) => specMatches(s, e.t, e.offset)).map((e) => e.offset));
  }, 30_000);

  it('refuses a bad filter with 400 GW_ERR_FILTER_INVALID naming the bad part', async () => {
    hub = await startHub();
    const h = hub;
    const cases: [string, RegExp][] = [
      ["where=kind = 'x' AND", /syntax error/],
      ['where=value %2B 1 > 2', /arithmetic/],
      ["where=kind = 'a'; DROP TABLE t", /one expression/],
      ['where=foo(kind) = 1', /function/],
      ['where=kind = (SELECT 1)', /subquery/],
      ['where=kind', /alone is not a condition/],
      ['minSeverity=urgent', /minSeverity/],
      ['kind=a,,b', /empty item/],
    ];
    for (const [q, message] of cases) {
      const res = await fetch(h.url(`/v1/streams/alerts?${q.replace(/ /g, '%20').replace(/;/g, '%3B')}`));
      const body = (await res.json()) as { error: string; message: string };
      expect(res.status, q).toBe(400);
      expect(body.error, q).toBe('GW_ERR_FILTER_INVALID');
      expect(body.message, q).toMatch(message);
    }
    const windows = await fetch(h.url('/v1/streams/windows?rule=hr_high'));
    expect(windows.status).toBe(400);
    const unknown = await fetch(h.url('/v1/streams/alerts?devcie=x'));
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { message: string }).message).toMatch(/devcie/);
    expect((await fetch(h.url('/v1/streams/nosuch'))).status).toBe(404);
  });
});
