import { escape, InfluxDB, type IPoint } from 'influx';
import type { IBackoffStrategy } from 'influx/lib/src/backoff/backoff.js';
import { RequestError, ServiceNotAvailableError } from 'influx/lib/src/pool.js';
import type { Logger } from 'pino';
import type { SinksConfig } from '../config/config.js';
import { GatewayError, isGatewayError } from '../errors.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { WindowResult } from '../window/types.js';
import type { AlertEvent } from '../wire/alert.js';
import {
  ALERT_MEASUREMENT,
  alertPoint,
  createInfluxMapping,
  rowToAlert,
  DEVICE_TAG,
  formatSize,
  RAW_RETENTION_POLICY,
  SIZE_TAG,
  WINDOW_RETENTION_POLICY,
  type InfluxRow,
} from './influx-points.js';
import type { SinkWriteObserver } from './sink-metrics.js';
import { alertTime, type AlertQuery, type ReadingQuery, type Sink, type SinkBatch, type WindowQuery } from './types.js';

export interface InfluxSinkOptions {
  readonly config: SinksConfig;
  readonly kinds: KindRegistry;
  readonly logger?: Logger;
  readonly metrics?: SinkWriteObserver;
  /** Timeout of one HTTP request to InfluxDB; default 10 s. */
  readonly requestTimeoutMs?: number;
}

export const INFLUX_SINK_NAME = 'influx';
const DEFAULT_DATABASE = 'pulsegate';
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/** Socket-level failures: the store is unreachable, a later attempt can succeed. */
const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * The `influx` pool would take a failed host out of rotation for a backoff period and answer
 * "No host available" meanwhile. The gateway retries with its own backoff (and counts it), so
 * the pool must neither retry nor disable: a delay of 0 keeps the host enabled.
 */
const NO_BACKOFF: IBackoffStrategy = {
  getDelay: () => 0,
  next: () => NO_BACKOFF,
  reset: () => NO_BACKOFF,
};

interface InfluxTarget {
  readonly host: string;
  readonly port: number;
  readonly protocol: 'http' | 'https';
  readonly path: string;
  readonly database: string;
  readonly username?: string;
  readonly password?: string;
}

/** `http://user:pass@host:8086/prefix/db`: the last path segment names the database. */
export function parseInfluxUrl(url: string): InfluxTarget {
  const parsed = new URL(url);
  const segments = parsed.pathname.split('/').filter((s) => s.length > 0);
  const database = decodeURIComponent(segments.pop() ?? DEFAULT_DATABASE);
  const protocol = parsed.protocol === 'https:' ? 'https' : 'http';
  return {
    host: parsed.hostname,
    port: parsed.port === '' ? (protocol === 'https' ? 443 : 8086) : Number(parsed.port),
    protocol,
    path: segments.length > 0 ? `/${segments.join('/')}` : '',
    database,
    ...(parsed.username !== '' ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password !== '' ? { password: decodeURIComponent(parsed.password) } : {}),
  };
}

function statusOf(err: unknown): number | null {
  if (err instanceof RequestError) return err.res.statusCode ?? null;
  return null;
}

/**
 * Maps a failure of the `influx` client onto the error catalog: unreachable or overloaded
 * (network errors, timeouts, 5xx, 429) -> retryable GW_ERR_SINK_UNAVAILABLE; a request InfluxDB
 * refuses (4xx: field type conflict, bad line protocol, auth) -> GW_ERR_SINK_WRITE (GW_ERR_SINK_QUERY
 * for a query), not retryable, since sending the same bytes again gets the same answer.
 */
export function toSinkError(err: unknown, operation: string): GatewayError {
  if (isGatewayError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ServiceNotAvailableError || (typeof code === 'string' && NETWORK_ERROR_CODES.has(code))) {
    return new GatewayError('GW_ERR_SINK_UNAVAILABLE', `InfluxDB ${operation} failed: ${message}`, {
      cause: err,
      retryable: true,
    });
  }
  const status = statusOf(err);
  if (status !== null && (status >= 500 || status === 429 || status === 408)) {
    return new GatewayError('GW_ERR_SINK_UNAVAILABLE', `InfluxDB ${operation} failed: ${message}`, {
      cause: err,
      retryable: true,
      details: { status },
    });
  }
  // A refused query is a read that failed: it must not look like a write the outbox dead-letters.
  return new GatewayError(operation === 'query' ? 'GW_ERR_SINK_QUERY' : 'GW_ERR_SINK_WRITE', `InfluxDB ${operation} failed: ${message}`, {
    cause: err,
    retryable: false,
    ...(status !== null ? { details: { status } } : {}),
  });
}

/**
 * InfluxDB drops points older than their retention policy and answers 400 "partial write:
 * points beyond retention policy dropped=N" while keeping the rest of the request. Such points
 * are gone by design (a resend after a long outage), so that answer is success, not a failure
 * that would dead-letter a batch whose other points are stored.
 */
function onlyBeyondRetention(err: unknown): boolean {
  if (statusOf(err) !== 400 || !(err instanceof Error)) return false;
  const message = err.message;
  return /points beyond retention policy dropped/.test(message) && !/conflict|unable to parse|invalid/.test(message);
}

const MISSING_SCHEMA = /database not found|retention policy not found/;

interface RawSeries {
  readonly columns?: readonly string[];
  readonly values?: ReadonlyArray<readonly unknown[]>;
}
interface RawResponse {
  readonly results?: ReadonlyArray<{ readonly series?: readonly RawSeries[]; readonly error?: string }>;
}

function rowsOf(response: unknown): InfluxRow[] {
  const results = (response as RawResponse | null)?.results ?? [];
  const rows: InfluxRow[] = [];
  for (const result of results) {
    if (result.error !== undefined) {
      throw new GatewayError('GW_ERR_SINK_QUERY', `InfluxDB query failed: ${result.error}`, { retryable: false });
    }
    for (const series of result.series ?? []) {
      const columns = series.columns ?? [];
      for (const values of series.values ?? []) {
        const row: Record<string, unknown> = {};
        columns.forEach((column, i) => {
          row[column] = values[i];
        });
        rows.push(row);
      }
    }
  }
  return rows;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * InfluxDB keeps time as int64 nanoseconds since the epoch: 1677-09-21 to 2262-04-11. A bound
 * outside that overflows the query ("overflowed duration"), so bounds are clamped to the last
 * whole millisecond it can hold; nothing can be stored beyond it anyway.
 */
export const INFLUX_MIN_TIME_MS = -9_223_372_036_854;
export const INFLUX_MAX_TIME_MS = 9_223_372_036_854;

const clampInfluxTime = (ms: number): number => Math.min(Math.max(Math.trunc(ms), INFLUX_MIN_TIME_MS), INFLUX_MAX_TIME_MS);

function timeRange(from: number, to: number): string {
  // An integer with a unit suffix is an epoch time literal in InfluxQL.
  return `time >= ${clampInfluxTime(from)}ms AND time < ${clampInfluxTime(to)}ms`;
}

/** An InfluxQL regex literal matching exactly the device glob (`*` any run, `?` one character). */
export function globRegexLiteral(glob: string): string {
  const body = glob
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')))
    .join('');
  return `/^${body}$/`;
}

function limitOf(limit: number): number {
  return Math.max(0, Math.floor(limit));
}

/**
 * Sink for InfluxDB 1.x (or 2.x through its v1 compatibility API, where the database and
 * retention policies must be mapped beforehand). Raw readings go to retention policy `raw`
 * (config rawRetention), windows and health samples to `windows` (windowRetention, the default
 * policy, so ad-hoc queries without a policy see the windows). See influx-points.ts for the
 * point layout.
 */
export function createInfluxSink(options: InfluxSinkOptions): Sink {
  const { config, kinds, logger, metrics } = options;
  if (config.influxUrl === null) throw new Error('createInfluxSink needs sinks.influxUrl');
  const target = parseInfluxUrl(config.influxUrl);
  const mapping = createInfluxMapping(kinds);
  const influx = new InfluxDB({
    host: target.host,
    port: target.port,
    protocol: target.protocol,
    ...(target.path !== '' ? { path: target.path } : {}),
    database: target.database,
    ...(target.username !== undefined ? { username: target.username } : {}),
    ...(target.password !== undefined ? { password: target.password } : {}),
    pool: { maxRetries: 0, requestTimeout: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, backoff: NO_BACKOFF },
  });
  const inFlight = new Set<Promise<unknown>>();
  let schemaReady = false;
  let closed = false;

  async function ensureRetentionPolicy(name: string, duration: string, isDefault: boolean): Promise<void> {
    const existing = await influx.showRetentionPolicies(target.database);
    // Config durations (`7d`, `520w`, `INF`) are InfluxQL duration literals as they are.
    const rp = { database: target.database, duration, replication: 1, isDefault };
    if (existing.some((p) => p.name === name)) await influx.alterRetentionPolicy(name, rp);
    else await influx.createRetentionPolicy(name, rp);
  }

  async function ensureSchema(): Promise<void> {
    if (schemaReady) return;
    try {
      // CREATE DATABASE is a no-op when it exists; ALTER keeps the policies in step with config.
      await influx.createDatabase(target.database);
      await ensureRetentionPolicy(RAW_RETENTION_POLICY, config.rawRetention, false);
      await ensureRetentionPolicy(WINDOW_RETENTION_POLICY, config.windowRetention, true);
    } catch (err) {
      throw toSinkError(err, 'schema setup');
    }
    schemaReady = true;
  }

  async function writeChunk(chunk: readonly IPoint[], retentionPolicy: string, precision: 'u' | 'ms'): Promise<void> {
    try {
      await influx.writePoints([...chunk], { retentionPolicy, precision, database: target.database });
    } catch (err) {
      // The database or a policy vanished under us (dropped by an operator, a fresh volume behind
      // the same URL): set the schema up again and send the chunk once more.
      if (!(err instanceof Error) || !MISSING_SCHEMA.test(err.message)) throw err;
      schemaReady = false;
      logger?.warn({ err: err.message }, 'InfluxDB database or retention policy missing; creating it again');
      await ensureSchema();
      await influx.writePoints([...chunk], { retentionPolicy, precision, database: target.database });
    }
  }

  async function writeChunks(points: readonly IPoint[], retentionPolicy: string, precision: 'u' | 'ms'): Promise<void> {
    for (const chunk of chunks(points, Math.max(1, config.batchMaxPoints))) {
      try {
        await writeChunk(chunk, retentionPolicy, precision);
      } catch (err) {
        if (onlyBeyondRetention(err)) {
          logger?.warn({ retentionPolicy, err: (err as Error).message }, 'InfluxDB dropped points older than the retention policy');
          continue;
        }
        throw toSinkError(err, 'write');
      }
    }
  }

  async function doWrite(batch: SinkBatch): Promise<void> {
    const startedAt = performance.now();
    try {
      await ensureSchema();
      // Every raw reading the batch holds: sinks.writeRawReadings chose them when batching.
      const raw = batch.readings.map((r) => mapping.readingPoint(r));
      const windowed: IPoint[] = batch.windows.map((w) => mapping.windowPoint(w));
      for (const sample of batch.health) {
        const point = mapping.healthPoint(sample);
        if (point !== null) windowed.push(point);
      }
      for (const a of batch.alerts ?? []) windowed.push(alertPoint(a));
      await writeChunks(raw, RAW_RETENTION_POLICY, 'u');
      await writeChunks(windowed, WINDOW_RETENTION_POLICY, 'ms');
      metrics?.written(INFLUX_SINK_NAME, raw.length + windowed.length, (performance.now() - startedAt) / 1000);
    } catch (err) {
      metrics?.failed(INFLUX_SINK_NAME, (performance.now() - startedAt) / 1000);
      throw toSinkError(err, 'write');
    }
  }

  function track<T>(promise: Promise<T>): Promise<T> {
    inFlight.add(promise);
    const forget = (): void => {
      inFlight.delete(promise);
    };
    promise.then(forget, forget);
    return promise;
  }

  function assertOpen(): void {
    if (closed) throw new GatewayError('GW_ERR_SHUTTING_DOWN', 'the InfluxDB sink is closed', { retryable: false });
  }

  async function select(query: string, precision: 'u' | 'ms'): Promise<InfluxRow[]> {
    try {
      return rowsOf(await influx.queryRaw(query, { precision, database: target.database }));
    } catch (err) {
      throw toSinkError(err, 'query');
    }
  }

  function deviceFilter(deviceId: string | undefined): string {
    return deviceId === undefined ? '' : ` AND ${escape.quoted(DEVICE_TAG)} = ${escape.stringLit(deviceId)}`;
  }

  return {
    name: INFLUX_SINK_NAME,

    async start() {
      assertOpen();
      await ensureSchema();
      logger?.info({ database: target.database, host: target.host, port: target.port }, 'InfluxDB sink ready');
    },

    async write(batch) {
      assertOpen();
      return track(doWrite(batch));
    },

    async queryWindows(query: WindowQuery): Promise<WindowResult[]> {
      assertOpen();
      const limit = limitOf(query.limit);
      if (limit === 0 || !kinds.has(query.kind)) return [];
      const measurement = `${escape.quoted(WINDOW_RETENTION_POLICY)}.${escape.quoted(mapping.windowMeasurementOf(query.kind))}`;
      const size = query.sizeMs === undefined ? '' : ` AND ${escape.quoted(SIZE_TAG)} = ${escape.stringLit(formatSize(query.sizeMs))}`;
      const q =
        `SELECT * FROM ${measurement} WHERE ${timeRange(query.from, query.to)}${deviceFilter(query.deviceId)}${size}` +
        ` ORDER BY time ASC LIMIT ${limit}`;
      return (await select(q, 'ms')).map((row) => mapping.rowToWindow(query.kind, row));
    },

    async queryReadings(query: ReadingQuery): Promise<Reading[]> {
      assertOpen();
      const limit = limitOf(query.limit);
      if (limit === 0 || !kinds.has(query.kind)) return [];
      const measurement = `${escape.quoted(RAW_RETENTION_POLICY)}.${escape.quoted(mapping.measurementOf(query.kind))}`;
      const q =
        `SELECT * FROM ${measurement} WHERE ${timeRange(query.from, query.to)}${deviceFilter(query.deviceId)}` +
        ` ORDER BY time ASC LIMIT ${limit}`;
      return (await select(q, 'u')).map((row) => mapping.rowToReading(query.kind, row));
    },

    async queryAlerts(query: AlertQuery): Promise<AlertEvent[]> {
      assertOpen();
      const limit = limitOf(query.limit);
      if (limit === 0) return [];
      const measurement = `${escape.quoted(WINDOW_RETENTION_POLICY)}.${escape.quoted(ALERT_MEASUREMENT)}`;
      const where = [timeRange(query.from, query.to)];
      if (query.kind !== undefined) where.push(`${escape.quoted('kind')} = ${escape.stringLit(query.kind)}`);
      if (query.device !== undefined) where.push(`${escape.quoted(DEVICE_TAG)} =~ ${globRegexLiteral(query.device)}`);
      if (query.rule !== undefined) where.push(`${escape.quoted('rule')} = ${escape.stringLit(query.rule)}`);
      if (query.severity !== undefined) where.push(`${escape.quoted('severity')} = ${escape.stringLit(query.severity)}`);
      const q = `SELECT * FROM ${measurement} WHERE ${where.join(' AND ')} ORDER BY time ASC LIMIT ${limit}`;
      const alerts = (await select(q, 'ms')).map(rowToAlert);
      // Transitions of one millisecond in log order, as the embedded store gives them.
      return alerts.sort((a, b) => alertTime(a) - alertTime(b) || a.offset - b.offset);
    },

    async close() {
      if (closed) return;
      closed = true;
      // Writes already handed to us finish (or fail) before close resolves: nothing is dropped
      // half-way, and the caller knows which batches were acknowledged.
      await Promise.allSettled([...inFlight]);
    },
  };
}
