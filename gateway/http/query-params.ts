import { GatewayError } from '../errors.js';

/** Parsing of the query parameters of the store's routes: strict, each refusal naming the parameter. */
const DURATION = /^([0-9]{1,12})(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** Decimal digits only: no sign, no `0x10`, no `1e3`, no blanks (Number() would take all of them). */
const DECIMAL = /^[0-9]{1,16}$/;
/** ISO 8601 date or date-time (what Date.parse reads reliably; its legacy forms read "-1" as 2001-01-01). */
const ISO_8601 = /^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$/;
/**
 * The widest time range a query can ask for: the epoch up to the last instant a JavaScript Date
 * can hold. Each store clamps it further to what it can represent (InfluxDB: int64 nanoseconds,
 * up to 2262-04-11), so `to=9999999999999` means "no upper bound" on every store.
 */
export const MAX_QUERY_TIME_MS = 8_640_000_000_000_000;

const clampTime = (ms: number): number => Math.min(Math.max(ms, 0), MAX_QUERY_TIME_MS);

/** Parses `from`/`to`: ms since epoch, an ISO 8601 date, or `now` / `now-<duration>`; clamped to [0, MAX_QUERY_TIME_MS]. */
export function parseTime(name: string, text: string | undefined, fallback: number, now: number): number {
  if (text === undefined || text === '') return fallback;
  // Any number of digits: a far future `to` is clamped, not refused.
  if (/^[0-9]+$/.test(text)) return clampTime(Number(text));
  if (text === 'now') return now;
  if (text.startsWith('now-')) {
    const m = DURATION.exec(text.slice(4));
    if (m) return clampTime(now - Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]);
  }
  const t = ISO_8601.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(t)) {
    throw new GatewayError('GW_ERR_QUERY_INVALID', `\`${name}\`: cannot parse time "${text}" (ms since the epoch, ISO 8601, now, or now-15m)`);
  }
  if (t < 0) throw new GatewayError('GW_ERR_QUERY_INVALID', `\`${name}\`: time "${text}" is before the epoch`);
  return clampTime(t);
}

/** Parses a window size: ms, or a duration like 10s / 1m. */
export function parseSize(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  if (DECIMAL.test(text)) return Number(text);
  const m = DURATION.exec(text);
  if (!m) throw new GatewayError('GW_ERR_QUERY_INVALID', `\`size\`: cannot parse "${text}" (ms, or 10s, 1m)`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

/** Parses `limit`: decimal digits only, in [1, max]. */
export function parseLimit(text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const limit = DECIMAL.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new GatewayError('GW_ERR_QUERY_INVALID', `\`limit\` must be a decimal integer in [1, ${max}], got "${text}"`);
  }
  return limit;
}

/**
 * The query string as single string values: a parameter given twice (`from=a&from=b`) and one the
 * route does not know (a typo such as `devcie=` would otherwise silently drop a filter) are
 * refused, each naming the parameter.
 */
export function singleParams<K extends string>(query: unknown, allowed: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const [name, value] of Object.entries((query ?? {}) as Record<string, unknown>)) {
    if (!(allowed as readonly string[]).includes(name)) {
      throw new GatewayError('GW_ERR_QUERY_INVALID', `unknown parameter \`${name}\` (allowed: ${allowed.join(', ')})`);
    }
    if (typeof value !== 'string') throw new GatewayError('GW_ERR_QUERY_INVALID', `parameter \`${name}\` given more than once`);
    out[name as K] = value;
  }
  return out;
}
