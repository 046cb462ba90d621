import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Registry } from 'prom-client';
import type { HttpConfig } from '../config/config.js';
import { GatewayError } from '../errors.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { AlertQuery, ReadingQuery, SerializedRows, SerializingSink, Sink, SqlQueryService, WindowQuery } from '../sinks/types.js';
import { parseSeverity } from './alert-routes.js';
import { parseLimit, parseSize, parseTime, singleParams } from './query-params.js';
import { createQueryLimiter } from './query-limiter.js';

/**
 * The store's routes, GET /v1/readings, GET /v1/windows and GET /v1/alerts/history, as a fastify
 * plugin: strict query parameters, and every query behind the query limiter
 * (http.maxConcurrentQueries and queue).
 */
export function isSerializingSink(sink: Sink): sink is SerializingSink {
  const s = sink as Partial<SerializingSink>;
  return typeof s.queryReadingsJson === 'function' && typeof s.queryWindowsJson === 'function' && typeof s.queryAlertsJson === 'function';
}

/** The alert transitions of a history query as the HTTP API sends them, from whichever kind of sink. */
export async function queryAlertsJson(sink: Sink, query: AlertQuery): Promise<SerializedRows> {
  if (isSerializingSink(sink)) return sink.queryAlertsJson(query);
  const rows = await sink.queryAlerts(query);
  return { count: rows.length, json: JSON.stringify(rows) };
}

/** The rows of a query as the HTTP API sends them, from whichever kind of sink. */
export async function queryRowsJson(sink: Sink, what: 'readings' | 'windows', query: ReadingQuery & Partial<WindowQuery>): Promise<SerializedRows> {
  if (isSerializingSink(sink)) return what === 'readings' ? sink.queryReadingsJson(query) : sink.queryWindowsJson(query as WindowQuery);
  const rows: readonly unknown[] = what === 'readings' ? await sink.queryReadings(query) : await sink.queryWindows(query as WindowQuery);
  return { count: rows.length, json: JSON.stringify(rows) };
}

/**
 * Sends `{kind, from, to, count, <what>}` with the rows as the sink serialized them: the same
 * bytes fastify's serializer would write for the object, without the rows as objects here.
 */
function sendRows(reply: FastifyReply, q: { kind: string; from: number; to: number }, what: 'readings' | 'windows', rows: SerializedRows): FastifyReply {
  return reply
    .type('application/json; charset=utf-8')
    .send(`{"kind":${JSON.stringify(q.kind)},"from":${JSON.stringify(q.from)},"to":${JSON.stringify(q.to)},"count":${rows.count},"${what}":${rows.json}}`);
}

export interface QueryRoutesOptions {
  readonly config: HttpConfig;
  readonly registry: Registry;
  readonly kinds: KindRegistry;
  readonly sink: Sink;
  /** POST /v1/query: read-only SQL (embedded store) or InfluxQL (InfluxDB); without it, no such route. */
  readonly sql?: SqlQueryService | undefined;
}

const READING_PARAMS = ['kind', 'device', 'from', 'to', 'limit'] as const;
const WINDOW_PARAMS = [...READING_PARAMS, 'size'] as const;
const DEFAULT_LIMIT = 1000;
const HISTORY_PARAMS = ['from', 'to', 'kind', 'device', 'rule', 'severity', 'limit'] as const;
/** Alert history reaches back a day unless `from` says otherwise. */
const DEFAULT_HISTORY_MS = 86_400_000;
/** Bytes of a POST /v1/query body. */
const SQL_BODY_LIMIT = 65_536;

/** `{ "sql": "...", "limit"?: n }`: the text and the row limit (at most http.maxQueryRows). */
export function sqlBody(body: unknown, maxQueryRows: number): { text: string; maxRows: number } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new GatewayError('GW_ERR_QUERY_INVALID', 'the body must be a JSON object {"sql": "SELECT ..."}');
  }
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => k !== 'sql' && k !== 'limit');
  if (unknown.length > 0) throw new GatewayError('GW_ERR_QUERY_INVALID', `unknown field ${unknown.map((k) => `\`${k}\``).join(', ')} (known: sql, limit)`);
  if (typeof b['sql'] !== 'string') throw new GatewayError('GW_ERR_QUERY_INVALID', '`sql` must be a string');
  let maxRows = maxQueryRows;
  if (b['limit'] !== undefined) {
    const limit = b['limit'];
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > maxQueryRows) {
      throw new GatewayError('GW_ERR_QUERY_INVALID', `\`limit\` must be an integer from 1 to ${maxQueryRows} (http.maxQueryRows)`);
    }
    maxRows = limit;
  }
  return { text: b['sql'], maxRows };
}

export function queryRoutes(options: QueryRoutesOptions): FastifyPluginAsync {
  const { config, registry, kinds, sink, sql } = options;
  // Created once per plugin, not per registration: its metrics register once on the registry.
  const limiter = createQueryLimiter({
    maxConcurrent: config.maxConcurrentQueries,
    maxQueued: config.maxQueuedQueries,
    queueTimeoutMs: config.queryQueueTimeoutMs,
    registry,
  });

  const range = (q: { from?: string; to?: string }, defaultSpanMs: number) => {
    const now = Date.now();
    const from = parseTime('from', q.from, now - defaultSpanMs, now);
    const to = parseTime('to', q.to, now + 1, now);
    if (from >= to) throw new GatewayError('GW_ERR_QUERY_INVALID', '`from` must be before `to`');
    return { from, to };
  };

  const common = (q: Partial<Record<(typeof READING_PARAMS)[number], string>>) => {
    if (q.kind === undefined || !kinds.has(q.kind)) {
      throw new GatewayError('GW_ERR_QUERY_INVALID', `\`kind\` must be one of ${[...kinds.keys()].join(', ')}`);
    }
    const { from, to } = range(q, 3_600_000);
    const limit = parseLimit(q.limit, DEFAULT_LIMIT, config.maxQueryRows);
    return { kind: q.kind, from, to, limit, ...(q.device ? { deviceId: q.device } : {}) };
  };

  /** A query runs only with a slot of the limiter; a client that hangs up while waiting leaves the queue. */
  function limited<T>(reply: FastifyReply, task: (gone: AbortSignal) => Promise<T>): Promise<T> {
    const gone = new AbortController();
    // 'close' before the response finished: the connection went away under us.
    const onClose = (): void => {
      if (!reply.raw.writableFinished) gone.abort(new Error('the client closed the connection'));
    };
    reply.raw.once('close', onClose);
    return limiter.run(() => task(gone.signal), gone.signal).finally(() => reply.raw.off('close', onClose));
  }

  const routes: FastifyPluginAsync = async (app) => {
    app.get('/v1/windows', async (req, reply) => {
      const params = singleParams(req.query, WINDOW_PARAMS);
      const q = common(params);
      const sizeMs = parseSize(params.size);
      const rows = await limited(reply, () => queryRowsJson(sink, 'windows', { ...q, ...(sizeMs !== undefined ? { sizeMs } : {}) }));
      return sendRows(reply, q, 'windows', rows);
    });
    app.get('/v1/readings', async (req, reply) => {
      const q = common(singleParams(req.query, READING_PARAMS));
      const rows = await limited(reply, () => queryRowsJson(sink, 'readings', q));
      return sendRows(reply, q, 'readings', rows);
    });
    // Alert transitions from the store (wire format with offset), in time order: firedAt for a
    // FIRING, resolvedAt for a RESOLVED, in [from, to).
    app.get('/v1/alerts/history', async (req, reply) => {
      const p = singleParams(req.query, HISTORY_PARAMS);
      if (p.kind !== undefined && !kinds.has(p.kind)) {
        throw new GatewayError('GW_ERR_QUERY_INVALID', `\`kind\` must be one of ${[...kinds.keys()].join(', ')}`);
      }
      const { from, to } = range(p, DEFAULT_HISTORY_MS);
      const query: AlertQuery = {
        from,
        to,
        limit: parseLimit(p.limit, DEFAULT_LIMIT, config.maxQueryRows),
        ...(p.kind !== undefined ? { kind: p.kind } : {}),
        ...(p.device !== undefined && p.device !== '' ? { device: p.device } : {}),
        ...(p.rule !== undefined && p.rule !== '' ? { rule: p.rule } : {}),
        ...(p.severity !== undefined ? { severity: parseSeverity('severity', p.severity) } : {}),
      };
      const rows = await limited(reply, () => queryAlertsJson(sink, query));
      return reply.type('application/json; charset=utf-8').send(`{"from":${from},"to":${to},"count":${rows.count},"alerts":${rows.json}}`);
    });
    if (sql !== undefined) {
      app.post('/v1/query', { bodyLimit: SQL_BODY_LIMIT }, async (req, reply) => {
        const { text, maxRows } = sqlBody(req.body, config.maxQueryRows);
        // A client that hangs up stops its query too (a SQL query's process is killed).
        const answer = await limited(reply, (gone) => sql.query(text, { maxRows, signal: gone }));
        return reply.type('application/json; charset=utf-8').send(`{"language":${JSON.stringify(sql.language)},${answer.json.slice(1)}`);
      });
    }
  };
  return routes;
}
