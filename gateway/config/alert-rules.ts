import { aggregateColumn, type KindDescriptor } from '../kinds/kind-descriptor.js';
import type { AlertRuleConfig, AlertsConfig, Duration, WindowConfig } from './config.js';

/**
 * Alert rules as the engine runs them: config checked against the kinds and window sizes, with
 * durations in ms and the device glob compiled. `compileAlertRules` lists every problem at once
 * (check-config and startup print them all).
 */
export type CompiledRule = ThresholdRule | SilenceRule | LossRule;

interface RuleBase {
  readonly id: string;
  readonly severity: 'info' | 'warning' | 'critical';
  readonly description: string | null;
  /** Device id glob as written, and compiled. */
  readonly devices: string;
  readonly matchesDevice: (deviceId: string) => boolean;
}

export interface ThresholdRule extends RuleBase {
  readonly kind: 'threshold';
  readonly sensorKind: string;
  readonly windowMs: number;
  readonly aggregate: string;
  readonly where: Readonly<Record<string, string>>;
  /** Group fields of the kind not fixed by `where`: part of the key. */
  readonly keyGroupFields: readonly string[];
  readonly direction: 'above' | 'below';
  readonly fireLevel: number;
  readonly clearLevel: number;
  readonly forMs: number;
  readonly clearForMs: number;
}

export interface SilenceRule extends RuleBase {
  readonly kind: 'silence';
  /** null: every kind. */
  readonly sensorKind: string | null;
  readonly afterMs: number;
}

export interface LossRule extends RuleBase {
  readonly kind: 'loss';
  readonly sensorKind: string | null;
  readonly windowMs: number;
  readonly fireLevel: number;
  readonly clearLevel: number;
  readonly minReadings: number;
}

/** The built-in rules for the built-in kinds (alerts.defaultRules), matched to the simulators' anomalies. */
export const DEFAULT_ALERT_RULES: readonly AlertRuleConfig[] = [
  { id: 'heart-rate-spike', kind: 'threshold', severity: 'critical', sensorKind: 'heart-rate', devices: '*', description: 'Heart rate above 200 bpm', window: '10s', aggregate: 'bpm_max', above: 200, clear: 190 },
  { id: 'heart-rate-flatline', kind: 'threshold', severity: 'critical', sensorKind: 'heart-rate', devices: '*', description: 'Heart rate signal flat below 20 bpm (sensor off or cardiac event)', window: '10s', aggregate: 'bpm_min', below: 20, clear: 30 },
  { id: 'heart-rate-sustained-high', kind: 'threshold', severity: 'warning', sensorKind: 'heart-rate', devices: '*', description: 'Mean heart rate above 180 bpm for 30 s', window: '10s', aggregate: 'bpm_mean', above: 180, clear: 170, for: '30s' },
  { id: 'bridge-truck-surge', kind: 'threshold', severity: 'warning', sensorKind: 'bridge', devices: '*', description: 'More than 25 trucks a minute in one lane', window: '1m', aggregate: 'count', where: { vehicleClass: 'TRUCK' }, above: 25, clear: 15 },
  { id: 'device-silent', kind: 'silence', severity: 'warning', devices: '*', description: 'No reading for 30 s', after: '30s' },
  { id: 'transit-loss', kind: 'loss', severity: 'warning', devices: '*', description: 'More than 5 % of readings lost in transit over a minute', window: '1m', above: 0.05, clear: 0.02 },
];

export function parseDuration(d: Duration): number {
  if (typeof d === 'number') return d;
  const m = /^([0-9]+)(ms|s|m|h)$/.exec(d);
  if (m === null) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
}

/**
 * `*` any run of characters, `?` one; everything else literal. Matched without a regular
 * expression: at most (pattern length x id length) steps whatever the glob (a `?device=` glob of a
 * request with many stars must not backtrack exponentially).
 */
export function compileGlob(glob: string): (s: string) => boolean {
  if (glob === '*') return () => true;
  if (!/[*?]/.test(glob)) return (s) => s === glob;
  const p = [...glob];
  return (text) => {
    const s = [...text];
    let i = 0;
    let j = 0;
    // The last star seen and where in `s` its run ends so far: on a mismatch it takes one more.
    let star = -1;
    let mark = 0;
    while (i < s.length) {
      if (j < p.length && (p[j] === '?' || (p[j] !== '*' && p[j] === s[i]))) {
        i++;
        j++;
      } else if (j < p.length && p[j] === '*') {
        star = j++;
        mark = i;
      } else if (star >= 0) {
        j = star + 1;
        i = ++mark;
      } else return false;
    }
    while (j < p.length && p[j] === '*') j++;
    return j === p.length;
  };
}

export interface CompileResult {
  readonly rules: readonly CompiledRule[];
  readonly problems: readonly string[];
  /** Why default rules were left out (they do not fit the configured windows). */
  readonly skipped: readonly string[];
}

export function compileAlertRules(config: AlertsConfig, kinds: ReadonlyMap<string, KindDescriptor>, windows: Pick<WindowConfig, 'defaultSizesMs' | 'sizesMs'>): CompileResult {
  const problems: string[] = [];
  const own = new Set(config.rules.map((r) => r.id));
  // A default rule for a kind this gateway does not know is left out, not an error; one whose id a
  // rule of alerts.rules uses is replaced by it.
  const defaults = config.defaultRules ? DEFAULT_ALERT_RULES.filter((r) => !own.has(r.id) && (r.sensorKind === undefined || kinds.has(r.sensorKind))) : [];
  const rules: CompiledRule[] = [];
  const skipped: string[] = [];
  for (const r of defaults) {
    // A default rule that does not fit this gateway's windows (window.sizesMs without its size) is
    // left out and named, not an error: the operator did not write it.
    const own: string[] = [];
    const compiled = compileRule(r, `alerts default rule "${r.id}"`, kinds, windows, own);
    if (compiled !== null) rules.push(compiled);
    else skipped.push(...own);
  }
  const seen = new Set<string>();
  config.rules.forEach((r, i) => {
    if (seen.has(r.id)) problems.push(`alerts.rules[${i}].id: "${r.id}" is used by an earlier rule`);
    seen.add(r.id);
    const compiled = compileRule(r, `alerts.rules[${i}] ("${r.id}")`, kinds, windows, problems);
    if (compiled !== null) rules.push(compiled);
  });
  return { rules, problems, skipped };
}

function compileRule(r: AlertRuleConfig, at: string, kinds: ReadonlyMap<string, KindDescriptor>, windows: Pick<WindowConfig, 'defaultSizesMs' | 'sizesMs'>, problems: string[]): CompiledRule | null {
  const before = problems.length;
  const allowed: Record<CompiledRule['kind'], readonly string[]> = {
    threshold: ['window', 'aggregate', 'where', 'above', 'below', 'clear', 'for', 'clearFor'],
    silence: ['after'],
    loss: ['window', 'above', 'clear', 'minReadings'],
  };
  const common = ['id', 'kind', 'severity', 'sensorKind', 'devices', 'description'];
  for (const key of Object.keys(r)) {
    if (!common.includes(key) && !allowed[r.kind].includes(key)) problems.push(`${at}: "${key}" does not apply to a ${r.kind} rule (it takes ${allowed[r.kind].join(', ')})`);
  }
  const kind = r.sensorKind === undefined ? null : (kinds.get(r.sensorKind) ?? null);
  if (r.sensorKind !== undefined && kind === null) problems.push(`${at}.sensorKind: unknown kind "${r.sensorKind}" (known: ${[...kinds.keys()].join(', ')})`);
  const ms = (name: 'window' | 'for' | 'clearFor' | 'after', d: Duration | undefined, dflt: number | null): number => {
    if (d === undefined) {
      if (dflt === null) problems.push(`${at}.${name}: required for a ${r.kind} rule`);
      return dflt ?? 0;
    }
    const v = parseDuration(d);
    if (!Number.isFinite(v)) problems.push(`${at}.${name}: not a duration: ${JSON.stringify(d)}`);
    return v;
  };
  const base = { id: r.id, severity: r.severity, description: r.description ?? null, devices: r.devices, matchesDevice: compileGlob(r.devices) };
  if (r.kind === 'silence') {
    const afterMs = ms('after', r.after, null);
    if (r.after !== undefined && afterMs < 1000) problems.push(`${at}.after: at least 1s, got ${afterMs} ms`);
    return problems.length > before ? null : { ...base, kind: 'silence', sensorKind: r.sensorKind ?? null, afterMs };
  }
  if (r.kind === 'loss') {
    const windowMs = ms('window', r.window, 60_000);
    if (windowMs < 1000) problems.push(`${at}.window: at least 1s, got ${windowMs} ms`);
    if (r.above === undefined) problems.push(`${at}.above: required: the fraction of readings lost (0..1) that fires`);
    const fire = r.above ?? 0;
    if (!(fire > 0 && fire < 1)) problems.push(`${at}.above: a fraction in (0, 1), got ${fire}`);
    const clear = r.clear ?? fire / 2;
    if (!(clear >= 0 && clear <= fire)) problems.push(`${at}.clear: must be in [0, above], got ${clear}`);
    return problems.length > before ? null : { ...base, kind: 'loss', sensorKind: r.sensorKind ?? null, windowMs, fireLevel: fire, clearLevel: clear, minReadings: r.minReadings ?? 20 };
  }
  // threshold
  if (r.sensorKind === undefined) problems.push(`${at}.sensorKind: required for a threshold rule`);
  if ((r.above === undefined) === (r.below === undefined)) problems.push(`${at}: give exactly one of "above" and "below"`);
  const direction = r.below !== undefined ? 'below' : 'above';
  const fire = (direction === 'above' ? r.above : r.below) ?? 0;
  const clear = r.clear ?? fire;
  if (direction === 'above' && clear > fire) problems.push(`${at}.clear: for an "above" rule the clear level must not be above it (${clear} > ${fire})`);
  if (direction === 'below' && clear < fire) problems.push(`${at}.clear: for a "below" rule the clear level must not be below it (${clear} < ${fire})`);
  const forMs = ms('for', r.for, 0);
  const clearForMs = ms('clearFor', r.clearFor, 0);
  let windowMs = 0;
  let keyGroupFields: string[] = [];
  if (kind !== null) {
    const sizes = windows.sizesMs[kind.name] ?? kind.window.sizesMs ?? windows.defaultSizesMs;
    windowMs = ms('window', r.window, sizes[0] ?? 0);
    if (Number.isFinite(windowMs) && !sizes.includes(windowMs)) problems.push(`${at}.window: ${windowMs} ms is not a window size of ${kind.name} (window.sizesMs: ${sizes.join(', ')})`);
    const columns = kind.window.aggregates.flatMap((spec) => spec.ops.map((op) => aggregateColumn(spec, op)));
    if (r.aggregate === undefined) problems.push(`${at}.aggregate: required (one of ${columns.join(', ')})`);
    else if (!columns.includes(r.aggregate)) problems.push(`${at}.aggregate: "${r.aggregate}" is not an aggregate of ${kind.name} (one of ${columns.join(', ')})`);
    const where = r.where ?? {};
    for (const [field, value] of Object.entries(where)) {
      if (!kind.window.groupBy.includes(field)) {
        problems.push(`${at}.where.${field}: not a group field of ${kind.name} (${kind.window.groupBy.join(', ') || 'it has none'})`);
        continue;
      }
      const spec = kind.fields[field];
      if (spec?.type === 'enum' && !spec.values.includes(value)) problems.push(`${at}.where.${field}: "${value}" is not one of ${spec.values.join(', ')}`);
    }
    keyGroupFields = kind.window.groupBy.filter((f) => !(f in where));
  }
  if (problems.length > before) return null;
  return { ...base, kind: 'threshold', sensorKind: r.sensorKind!, windowMs, aggregate: r.aggregate!, where: r.where ?? {}, keyGroupFields, direction, fireLevel: fire, clearLevel: clear, forMs, clearForMs };
}
