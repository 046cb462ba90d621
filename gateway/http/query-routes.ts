import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Registry } from 'prom-client';
import type { HttpConfig } from '../config/config.js';
import { GatewayError } from '../errors.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { Sink } from '../sinks/types.js';
import { parseLimit, parseSize, parseTime, singleParams } from './query-params.js';
import { createQueryLimiter } from './query-limiter.js';

/**
 * The store's routes, GET /v1/readings and GET /v1/windows, as a fastify plugin: strict query
 * parameters, and every query behind the query limiter (http.maxConcurrentQueries and queue).
 */
export interface QueryRoutesOptions {
  readonly config: HttpConfig;
  readonly registry: Registry;
  readonly kinds: KindRegistry;
  readonly sink: Sink;
}

const READING_PARAMS = ['kind', 'device', 'from', 'to', 'limit'] as const;
const WINDOW_PARAMS = [...READING_PARAMS, 'size'] as const;
const DEFAULT_LIMIT = 1000;

export function queryRoutes(options: QueryRoutesOptions): FastifyPluginAsync {
  const { config, registry, kinds, sink } = options;
  // Created once per plugin, not per registration: its metrics register once on the registry.
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

  const routes: FastifyPluginAsync = async (app) => {
    app.get('/v1/windows', async (req, reply) => {
      const params = singleParams(req.query, WINDOW_PARAMS);
      const q = common(params);
      const sizeMs = parseSize(params.size);
      const windows = await limited(reply, () => sink.queryWindows({ ...q, ...(sizeMs !== undefined ? { sizeMs } : {}) }));
      return { kind: q.kind, from: q.from, to: q.to, count: windows.length, windows };
    });
    app.get('/v1/readings', async (req, reply) => {
      const q = common(singleParams(req.query, READING_PARAMS));
      const readings = await limited(reply, () => sink.queryReadings(q));
      return { kind: q.kind, from: q.from, to: q.to, count: readings.length, readings };
    });
  };
  return routes;
}
