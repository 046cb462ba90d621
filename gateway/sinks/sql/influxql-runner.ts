import type { Registry } from 'prom-client';
import { GatewayError } from '../../errors.js';
import { parseInfluxUrl } from '../influx-sink.js';
import type { SqlAnswer, SqlQueryService } from '../types.js';
import { MAX_SQL_CHARS } from './sql-guard.js';
import { createSqlOutcomeCounter, type SqlOutcome } from './sql-runner.js';

/** Bytes of an InfluxDB answer read at most; a larger one is refused (narrow the query). */
const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

function invalid(message: string, position?: { line: number; column: number }): GatewayError {
  return new GatewayError('GW_ERR_QUERY_INVALID', message, position === undefined ? {} : { details: { position } });
}

/**
 * Refuses anything but one InfluxQL SELECT or SHOW: the first keyword, no `;` between
 * statements and no INTO (SELECT ... INTO writes) outside quotes and comments. This check is
 * the guard: InfluxDB 1.x still runs DROP, CREATE or SELECT INTO sent as GET (with a deprecation
 * warning only), so the store itself refuses writes only to a user with READ privilege alone.
 */
export function checkReadOnlyInfluxQl(text: string): void {
  if (text.trim() === '') throw invalid('`sql` is empty');
  if (text.length > MAX_SQL_CHARS) throw invalid(`\`sql\` is longer than ${MAX_SQL_CHARS} characters`);
  const words: Array<{ word: string; at: number }> = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      const start = i++;
      while (i < text.length && text[i] !== c) i += text[i] === '\\' ? 2 : 1;
      if (i >= text.length) throw invalid(`unterminated ${c === "'" ? 'string' : 'identifier'} starting at char ${start + 1}`, positionOf(text, start));
      i++;
    } else if (c === '-' && text[i + 1] === '-') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 2;
    } else if (c === ';') {
      if (text.slice(i + 1).trim() !== '') throw invalid('one statement only; nothing ran', positionOf(text, i));
      i++;
    } else if (/[A-Za-z_]/.test(c)) {
      const start = i;
      while (i < text.length && /[A-Za-z0-9_]/.test(text[i]!)) i++;
      words.push({ word: text.slice(start, i).toUpperCase(), at: start });
    } else i++;
  }
  const first = words[0];
  if (first === undefined || (first.word !== 'SELECT' && first.word !== 'SHOW')) {
    throw invalid(`only SELECT and SHOW are allowed (got ${first?.word ?? 'nothing'}); nothing ran`, first ? positionOf(text, first.at) : undefined);
  }
  const into = words.find((w) => w.word === 'INTO');
  if (into !== undefined) throw invalid('SELECT ... INTO writes; it is not allowed; nothing ran', positionOf(text, into.at));
}

function positionOf(text: string, offset: number): { line: number; column: number; offset: number } {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: before[before.length - 1]!.length + 1, offset };
}

interface InfluxSeries {
  readonly name?: string;
  readonly tags?: Record<string, string>;
  readonly columns?: string[];
  readonly values?: unknown[][];
}
interface InfluxAnswer {
  readonly results?: Array<{ readonly series?: InfluxSeries[]; readonly error?: string }>;
  readonly error?: string;
}

/** One table of the series of an answer: their name and tags as leading columns when they differ. */
function flatten(series: readonly InfluxSeries[], maxRows: number): { columns: string[]; rows: unknown[][]; truncated: boolean } {
  const tagKeys = [...new Set(series.flatMap((s) => Object.keys(s.tags ?? {})))].sort();
  const valueColumns = [...new Set(series.flatMap((s) => s.columns ?? []))];
  const withName = new Set(series.map((s) => s.name)).size > 1;
  const columns = [...(withName ? ['name'] : []), ...tagKeys, ...valueColumns];
  const rows: unknown[][] = [];
  let truncated = false;
  for (const s of series) {
    const index = (s.columns ?? []).map((c) => valueColumns.indexOf(c));
    for (const v of s.values ?? []) {
      if (rows.length >= maxRows) {
        truncated = true;
        break;
      }
      const values: unknown[] = new Array(valueColumns.length).fill(null);
      v.forEach((cell, j) => (values[index[j]!] = cell));
      rows.push([...(withName ? [s.name ?? null] : []), ...tagKeys.map((k) => s.tags?.[k] ?? null), ...values]);
    }
  }
  return { columns, rows, truncated };
}

export interface InfluxQlRunnerOptions {
  /** sinks.influxUrl: the database in its path. */
  readonly influxUrl: string;
  readonly timeoutMs: number;
  readonly registry?: Registry;
}

/**
 * POST /v1/query on InfluxDB: InfluxQL SELECT/SHOW passed through as a GET /query (the read
 * form of InfluxDB's API), times as ms since the epoch, the request aborted at timeoutMs.
 */
export function createInfluxQlRunner(options: InfluxQlRunnerOptions): SqlQueryService {
  const target = parseInfluxUrl(options.influxUrl);
  const outcomes = createSqlOutcomeCounter(options.registry);
  const base = `${target.protocol}://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}${target.path}/query`;
  const headers: Record<string, string> = {};
  if (target.username !== undefined) headers['authorization'] = `Basic ${Buffer.from(`${target.username}:${target.password ?? ''}`).toString('base64')}`;

  async function run(text: string, maxRows: number, signal: AbortSignal | undefined): Promise<SqlAnswer> {
    checkReadOnlyInfluxQl(text);
    const startedAt = performance.now();
    const url = `${base}?${new URLSearchParams({ db: target.database, q: text, epoch: 'ms' })}`;
    const timeout = AbortSignal.timeout(options.timeoutMs);
    let res: Response;
    try {
      res = await fetch(url, { method: 'GET', headers, signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]) });
    } catch (err) {
      if (timeout.aborted) throw timedOut(options.timeoutMs);
      if (signal?.aborted) throw signal.reason as Error;
      throw new GatewayError('GW_ERR_SINK_UNAVAILABLE', `InfluxDB query failed: ${(err as Error).message}`, { retryable: true, cause: err });
    }
    let body: string;
    try {
      body = await readCapped(res, MAX_RESPONSE_BYTES);
    } catch (err) {
      if (timeout.aborted) throw timedOut(options.timeoutMs);
      throw err;
    }
    let answer: InfluxAnswer;
    try {
      answer = JSON.parse(body) as InfluxAnswer;
    } catch {
      throw new GatewayError(res.status >= 500 ? 'GW_ERR_SINK_UNAVAILABLE' : 'GW_ERR_SINK_QUERY', `InfluxDB answered ${res.status} without JSON`, { retryable: res.status >= 500 });
    }
    const error = answer.error ?? answer.results?.find((r) => r.error !== undefined)?.error;
    if (error !== undefined) {
      if (res.status >= 500) throw new GatewayError('GW_ERR_SINK_UNAVAILABLE', `InfluxDB: ${error}`, { retryable: true });
      // "error parsing query: found X, expected Y at line 1, char 8"
      const at = /at line (\d+), char (\d+)/.exec(error);
      throw invalid(`InfluxDB: ${error}`, at ? { line: Number(at[1]), column: Number(at[2]) } : undefined);
    }
    const { columns, rows, truncated } = flatten(answer.results?.[0]?.series ?? [], maxRows);
    const elapsedMs = Math.round((performance.now() - startedAt) * 10) / 10;
    return { count: rows.length, truncated, json: JSON.stringify({ columns, count: rows.length, truncated, elapsedMs, rows }) };
  }

  return {
    language: 'influxql',
    async query(text, { maxRows, signal }) {
      let outcome: SqlOutcome = 'error';
      try {
        const answer = await run(text, maxRows, signal);
        outcome = 'ok';
        return answer;
      } catch (err) {
        const code = (err as { code?: string }).code;
        outcome = code === 'GW_ERR_QUERY_INVALID' ? 'invalid' : code === 'GW_ERR_QUERY_TIMEOUT' ? 'timeout' : signal?.aborted ? 'aborted' : 'error';
        throw err;
      } finally {
        outcomes.labels(outcome).inc();
      }
    },
    async close() {},
  };
}

function timedOut(timeoutMs: number): GatewayError {
  return new GatewayError('GW_ERR_QUERY_TIMEOUT', `the query ran longer than ${timeoutMs} ms (http.sqlTimeoutMs) and was stopped`, { details: { timeoutMs } });
}

/** The body as text, refused past `max` bytes (InfluxDB streams large answers chunked, without a length). */
async function readCapped(res: Response, max: number): Promise<string> {
  if (Number(res.headers.get('content-length') ?? '0') > max || res.body === null) {
    if (res.body === null) return '';
    await res.body.cancel();
    throw new GatewayError('GW_ERR_QUERY_INVALID', `InfluxDB's answer is larger than ${max} bytes; narrow the query (WHERE time, LIMIT)`);
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > max) {
      await reader.cancel();
      throw new GatewayError('GW_ERR_QUERY_INVALID', `InfluxDB's answer is larger than ${max} bytes; narrow the query (WHERE time, LIMIT)`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
