import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { HttpConfig } from '../config/config.js';
import { isGatewayError } from '../errors.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { Sink, SqlQueryService } from '../sinks/types.js';
import { queryRoutes } from './query-routes.js';
import { secureContextOptions, type TlsMaterial, type TlsMetrics } from '../tls.js';

export interface HttpServerOptions {
  readonly config: HttpConfig;
  readonly registry: Registry;
  /** The store behind /v1/readings and /v1/windows (see query-routes.ts); without it, no such routes. */
  readonly kinds?: KindRegistry;
  readonly sink?: Sink;
  /** POST /v1/query (with `sink` and `kinds`); absent = no such route. */
  readonly sql?: SqlQueryService;
  /** The routes of other tiers, each a fastify plugin registered on this server. */
  readonly plugins?: readonly FastifyPluginAsync[];
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

export { MAX_QUERY_TIME_MS, parseLimit, parseSize, parseTime, singleParams } from './query-params.js';

/** Seconds a client refused with GW_ERR_BUSY is told to wait (Retry-After). */
const BUSY_RETRY_AFTER_S = 1;


export function createHttpServer(options: HttpServerOptions): HttpServer {
  const { config, registry } = options;
  // Request logs are at info level; the http tier logs warnings and errors only.
  const loggerInstance = options.logger.child({ tier: 'http' }, { level: 'warn' }) as FastifyBaseLogger;
  const tls = options.tls ?? null;
  // The API and SSE streams serve no client certificates: only the server's certificate is used.
  // At shutdown every connection is closed, not waited for: a client that never finishes its
  // request (a hung socket, a long-poll, a stream) must not hold the process up. Requests that
  // arrive while closing are routed as usual (no blanket 503): the SSE routes drop them, so an
  // EventSource reconnects to the restarted gateway instead of giving up on a 503.
  const app = (tls === null ? Fastify({ loggerInstance, forceCloseConnections: true, return503OnClosing: false }) : Fastify({ loggerInstance, forceCloseConnections: true, return503OnClosing: false, https: secureContextOptions(tls.material, false) })) as unknown as FastifyInstance;
  if (tls !== null) {
    app.server.on('tlsClientError', (err: Error) => {
      tls.metrics.handshakeFailed('https');
      options.logger.debug({ listener: 'https', err: err.message }, 'TLS handshake failed');
    });
  }

  app.setErrorHandler((err, _req, reply) => {
    if (isGatewayError(err, 'GW_ERR_QUERY_INVALID')) {
      const position = err.details?.['position'];
      return reply.code(400).send({ error: err.code, message: err.message, ...(position !== undefined ? { position } : {}) });
    }
    if (isGatewayError(err, 'GW_ERR_QUERY_TIMEOUT')) return reply.code(422).send({ error: err.code, message: err.message });
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
  if (options.sink !== undefined && options.kinds !== undefined) app.register(queryRoutes({ config, registry, kinds: options.kinds, sink: options.sink, sql: options.sql }));
  for (const plugin of options.plugins ?? []) app.register(plugin);

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
