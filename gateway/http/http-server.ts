import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { HttpConfig } from '../config/config.js';
import { GatewayError, isGatewayError } from '../errors.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { Sink } from '../sinks/types.js';
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

const DURATION = /^([0-9]+)(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Parses `from`/`to`: ms since epoch, an ISO date, or `now-<duration>` / `now`. */
export function parseTime(text: string | undefined, fallback: number, now: number): number {
  if (text === undefined || text === '') return fallback;
  if (/^[0-9]+$/.test(text)) return Number(text);
  if (text === 'now') return now;
  if (text.startsWith('now-')) {
    const m = DURATION.exec(text.slice(4));
    if (m) return now - Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  }
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new GatewayError('GW_ERR_QUERY_INVALID', `cannot parse time "${text}" (ms since epoch, ISO 8601, or now-15m)`);
  return t;
}

/** Parses a window size: ms, or a duration like 10s / 1m. */
export function parseSize(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  if (/^[0-9]+$/.test(text)) return Number(text);
  const m = DURATION.exec(text);
  if (!m) throw new GatewayError('GW_ERR_QUERY_INVALID', `cannot parse size "${text}" (ms, or 10s, 1m)`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
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

  interface QueryString {
    kind?: string;
    device?: string;
    from?: string;
    to?: string;
    size?: string;
    limit?: string;
  }
  const common = (q: QueryString) => {
    if (q.kind === undefined || !kinds.has(q.kind)) {
      throw new GatewayError('GW_ERR_QUERY_INVALID', `kind must be one of ${[...kinds.keys()].join(', ')}`);
    }
    const now = Date.now();
    const from = parseTime(q.from, now - 3_600_000, now);
    const to = parseTime(q.to, now + 1, now);
    if (from >= to) throw new GatewayError('GW_ERR_QUERY_INVALID', '`from` must be before `to`');
    const limit = q.limit === undefined ? 1000 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > config.maxQueryRows) {
      throw new GatewayError('GW_ERR_QUERY_INVALID', `limit must be an integer in [1, ${config.maxQueryRows}]`);
    }
    return { kind: q.kind, from, to, limit, ...(q.device ? { deviceId: q.device } : {}) };
  };
  app.get<{ Querystring: QueryString }>('/v1/windows', async (req) => {
    const q = common(req.query);
    const sizeMs = parseSize(req.query.size);
    const windows = await sink.queryWindows({ ...q, ...(sizeMs !== undefined ? { sizeMs } : {}) });
    return { kind: q.kind, from: q.from, to: q.to, count: windows.length, windows };
  });
  app.get<{ Querystring: QueryString }>('/v1/readings', async (req) => {
    const q = common(req.query);
    const readings = await sink.queryReadings(q);
    return { kind: q.kind, from: q.from, to: q.to, count: readings.length, readings };
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
