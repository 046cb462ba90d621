import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { HttpConfig } from '../config/config.js';
import { GatewayError, isGatewayError } from '../errors.js';
import type { KindRegistry } from '../kinds/registry.js';
import { queryRowsJson, type SerializedRows, type Sink } from '../sinks/types.js';
import { createQueryLimiter } from './query-limiter.js';
import { secureContextOptions, type TlsMaterial, type TlsMetrics } from '../tls.js';

export interface HttpServerOptions {
  readonly config: HttpConfig;
  readonly registry: Registry;
  readonly kinds: KindRegistry;
  readonly sink: Sink;
  readonly logger: Logger;
  /** Readiness: null when ready, else why not (e.g. 'starting', 'log backpressure'). */
  readonly notReadyReason: () => string | null;
  /** With http.tls: the server certificate and key (HTTPS); null or absent = plain HTTP. */
  readonly tls?: { readonly material: TlsMaterial; readonly metrics: TlsMetrics } | null;
}

export interface HttpServer {
  readonly app: FastifyInstance;
  start(): Promise<number>;
  close(): Promise<void>;
  /** New certificate/key for new HTTPS connections (no-op over plain HTTP). */
  setTlsMaterial(material: TlsMaterial): void;
}

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

const READING_PARAMS = ['kind', 'device', 'from', 'to', 'limit'] as const;
const WINDOW_PARAMS = [...READING_PARAMS, 'size'] as const;
const DEFAULT_LIMIT = 1000;
/** Seconds a client refused with GW_ERR_BUSY is told to wait (Retry-After). */
const BUSY_RETRY_AFTER_S = 1;

/**
 * Sends `{kind, from, to, count, <what>}` with the rows as the sink serialized them: the same
 * bytes fastify's serializer would write for the object, without the rows as objects here.
 */
function sendRows(reply: FastifyReply, q: { kind: string; from: number; to: number }, what: 'readings' | 'windows', rows: SerializedRows): FastifyReply {
  return reply
    .type('application/json; charset=utf-8')
    .send(`{"kind":${JSON.stringify(q.kind)},"from":${JSON.stringify(q.from)},"to":${JSON.stringify(q.to)},"count":${rows.count},"${what}":${rows.json}}`);
}

export function createHttpServer(options: HttpServerOptions): HttpServer {
  const { config, registry, kinds, sink } = options;
  // Request logs are at info level; the http tier logs warnings and errors only.
  const loggerInstance = options.logger.child({ tier: 'http' }, { level: 'warn' }) as FastifyBaseLogger;
  const tls = options.tls ?? null;
  // The API and SSE streams serve no client certificates: only the server's certificate is used.
  const app = (tls === null ? Fastify({ loggerInstance }) : Fastify({ loggerInstance, https: secureContextOptions(tls.material, false) })) as unknown as FastifyInstance;
  if (tls !== null) {
    app.server.on('tlsClientError', (err: Error) => {
      tls.metrics.handshakeFailed('https');
      options.logger.debug({ listener: 'https', err: err.message }, 'TLS handshake failed');
    });
  }

  app.setErrorHandler((err, _req, reply) => {
    if (isGatewayError(err, 'GW_ERR_QUERY_INVALID')) return reply.code(400).send({ error: err.code, message: err.message });
    if (isGatewayError(err, 'GW_ERR_BUSY')) {
      return reply.code(503).header('retry-after', String(BUSY_RETRY_AFTER_S)).send({ error: err.code, message: err.message });
    }
    if (isGatewayError(err)) return reply.code(err.retryable ? 503 : 500).send({ error: err.code, message: err.message });
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    return reply.code(status).send({ error: 'GW_ERR_HTTP', message: (err as Error).message });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const reason = options.notReadyReason();
    if (reason !== null) return reply.code(503).send({ status: 'not ready', reason });
    return { status: 'ready' };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  const limiter = createQueryLimiter({
    maxConcurrent: config.maxConcurrentQueries,
    maxQueued: config.maxQueuedQueries,
    queueTimeoutMs: config.queryQueueTimeoutMs,
    registry,
  });

  const common = (q: Partial<Record<(typeof READING_PARAMS)[number], string>>) => {
    if (q.kind === undefined || !kinds.has(q.kind)) {
      throw new GatewayError('GW_ERR_QUERY_INVALID', `\`kind\` must be one of ${[...kinds.keys()].join(', ')}`);
    }
    const now = Date.now();
    const from = parseTime('from', q.from, now - 3_600_000, now);
    const to = parseTime('to', q.to, now + 1, now);
    if (from >= to) throw new GatewayError('GW_ERR_QUERY_INVALID', '`from` must be before `to`');
    const limit = parseLimit(q.limit, DEFAULT_LIMIT, config.maxQueryRows);
    return { kind: q.kind, from, to, limit, ...(q.device ? { deviceId: q.device } : {}) };
  };

  /** A query runs only with a slot of the limiter; a client that hangs up while waiting leaves the queue. */
  function limited<T>(reply: FastifyReply, task: () => Promise<T>): Promise<T> {
    const gone = new AbortController();
    // 'close' before the response finished: the connection went away under us.
    const onClose = (): void => {
      if (!reply.raw.writableFinished) gone.abort(new Error('the client closed the connection'));
    };
    reply.raw.once('close', onClose);
    return limiter.run(task, gone.signal).finally(() => reply.raw.off('close', onClose));
  }

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

  return {
    app,
    async start() {
      await app.listen({ port: config.port, host: config.host });
      return (app.server.address() as AddressInfo).port;
    },
    async close() {
      await app.close();
    },
    setTlsMaterial(material) {
      if (tls !== null) (app.server as unknown as TlsServer).setSecureContext(secureContextOptions(material, false));
    },
  };
}
