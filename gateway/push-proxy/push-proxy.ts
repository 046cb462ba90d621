import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { Agent } from 'node:https';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import cron, { type ScheduledTask } from 'node-cron';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock } from '../clock.js';
import type { GatewayConfig, PushProxyConfig } from '../config/config.js';
import { GatewayError } from '../errors.js';
import { createRegistry } from '../metrics.js';
import { HandoffStore, type HandoffRow } from './handoff-store.js';
import { parseHandoffRequest, STREAM_NAME, streamPath } from './handoff-request.js';
import { createPushProxyMetrics, type PushProxyMetrics } from './push-proxy-metrics.js';
import { lockProxyDataDir } from './proxy-lock.js';
import { createPushSender, type PushSender } from './push-sender.js';
import { LiveHandoff, StreamGroup, type GroupContext } from './stream-group.js';
import { readVapidKeyFile, type VapidKeys } from './vapid-keys.js';

export interface PushProxyDeps {
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly random?: () => number;
  /** An https agent for the push services (a private CA in tests). */
  readonly pushAgent?: Agent;
  /** Replaces reading pushProxy.vapidKeyFile. */
  readonly vapidKeys?: VapidKeys;
}

export interface PushProxy {
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  readonly registry: Registry;
  readonly store: HandoffStore;
  /** Ends expired hand-offs and deletes long-ended ones; what the cron job runs. */
  sweep(): { expired: number; deleted: number };
  /** Connections to the gateway held for hand-offs. */
  streamCount(): number;
  close(): Promise<void>;
}

const APP_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.css': 'text/css; charset=utf-8',
};

/** The page's files: beside this module in the sources; in a build, still read from the sources' folder. */
function appDir(): string {
  const here = fileURLToPath(new URL('./app/', import.meta.url));
  return existsSync(here) ? here : fileURLToPath(new URL('../../../gateway/push-proxy/app/', import.meta.url));
}

function loadApp(): Map<string, { type: string; body: Buffer }> {
  const dir = appDir();
  const files = new Map<string, { type: string; body: Buffer }>();
  for (const name of readdirSync(dir)) {
    const type = APP_TYPES[extname(name)];
    if (type !== undefined) files.set(name, { type, body: readFileSync(join(dir, name)) });
  }
  return files;
}

/** Starts the push proxy: restores its hand-offs, connects their streams, serves the API and /app/. */
export async function startPushProxy(config: PushProxyConfig, deps: PushProxyDeps = {}): Promise<PushProxy> {
  const problems: string[] = [];
  if (config.vapidSubject === null) problems.push('pushProxy.vapidSubject: required by the push proxy (a mailto: address the push services can reach the operator at, RFC 8292 section 2.1)');
  if (!cron.validate(config.sweepSchedule)) problems.push(`pushProxy.sweepSchedule: not a valid cron expression: ${config.sweepSchedule}`);
  if (problems.length > 0) throw new GatewayError('GW_ERR_CONFIG_INVALID', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  const vapid = deps.vapidKeys ?? readVapidKeyFile(config.vapidKeyFile);
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? pino({ level: 'info', base: { service: 'pulsegate-push-proxy' } });
  const registry = createRegistry();
  const unlock = lockProxyDataDir(config.dataDir);
  let store: HandoffStore;
  try {
    store = new HandoffStore(config.dataDir);
  } catch (err) {
    unlock();
    throw err;
  }
  const groups = new Map<string, StreamGroup>();
  const live = new Map<string, { h: LiveHandoff; group: StreamGroup }>();
  const metrics: PushProxyMetrics = createPushProxyMetrics(registry, () => live.size);
  const send: PushSender = createPushSender({
    vapid,
    subject: config.vapidSubject!,
    ttlSeconds: config.pushTtlSeconds,
    timeoutMs: config.pushTimeoutMs,
    ...(deps.pushAgent === undefined ? {} : { agent: deps.pushAgent }),
  });
  const gatewayUrl = config.gatewayUrl.replace(/\/+$/, '');

  const byEndpoint = new Map<string, string>();
  const forget = (h: LiveHandoff, group: StreamGroup): void => {
    live.delete(h.id);
    if (byEndpoint.get(h.subscription.endpoint) === h.id) byEndpoint.delete(h.subscription.endpoint);
    if (group.handoffs.size === 0 && groups.get(group.key) === group) groups.delete(group.key);
  };
  const groupFor = (key: string, stream: string): StreamGroup => {
    let g = groups.get(key);
    if (g === undefined || g.isClosed) {
      const ctx: GroupContext = {
        store,
        send,
        clock,
        logger,
        metrics,
        retry: { initialMs: config.retryInitialMs, maxMs: config.retryMaxMs },
        random: deps.random ?? Math.random,
        gatewayUrl,
        gatewayToken: config.gatewayToken,
        maxQueued: config.maxQueuedEventsPerHandoff,
        onEnded: (h) => forget(h, g!),
      };
      g = new StreamGroup(key, stream, ctx);
      groups.set(key, g);
    }
    return g;
  };
  // New hand-offs arriving together share one fsync (group commit, one per turn of the event loop).
  const pendingCreates: { row: HandoffRow; resolve: (replaced: string | null) => void; reject: (err: unknown) => void }[] = [];
  const flushCreates = (): void => {
    const batch = pendingCreates.splice(0);
    try {
      const replaced = store.createMany(batch.map((b) => b.row));
      batch.forEach((b, i) => b.resolve(replaced[i] ?? null));
    } catch (err) {
      for (const b of batch) b.reject(err);
    }
  };
  const persist = (row: HandoffRow): Promise<string | null> =>
    new Promise((resolve, reject) => {
      if (pendingCreates.push({ row, resolve, reject }) === 1) setImmediate(flushCreates);
    });
  const serve = (row: HandoffRow): void => {
    const group = groupFor(row.streamKey, row.stream);
    live.set(row.id, { h: group.add(row), group });
    byEndpoint.set(row.subscription.endpoint, row.id);
  };

  // Restore: every active hand-off resumes from its stored position.
  let restored = 0;
  for (const row of store.active()) {
    if (row.expiresAt <= clock.now()) {
      store.end(row.id, 'expired', clock.now());
      metrics.ended.inc({ reason: 'expired' });
    } else {
      serve(row);
      restored++;
    }
  }

  const sweep = (): { expired: number; deleted: number } => {
    metrics.sweeps.inc();
    const now = clock.now();
    let expired = 0;
    for (const id of store.expired(now)) {
      const l = live.get(id);
      if (l !== undefined) {
        l.group.end(l.h, 'expired', 0).catch((err: unknown) => logger.error({ err, handoff: id }, 'could not end an expired hand-off'));
        forget(l.h, l.group);
      } else if (store.end(id, 'expired', now)) metrics.ended.inc({ reason: 'expired' });
      expired++;
    }
    const deleted = store.prune(now - config.endedRetentionMs);
    if (expired > 0 || deleted > 0) logger.info({ expired, deleted }, 'push hand-off sweep');
    return { expired, deleted };
  };
  const task: ScheduledTask = cron.schedule(config.sweepSchedule, () => {
    try {
      sweep();
    } catch (err) {
      logger.error({ err }, 'push hand-off sweep failed; the next run tries again');
    }
  });

  const app = buildHttp({ config, vapid, store, live, byEndpoint, groups, persist, pendingCreates: () => pendingCreates.length, metrics, clock, logger, registry, gatewayUrl, serve, forget });
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await task.destroy();
    for (const g of groups.values()) g.close();
    store.close();
    unlock();
    throw err;
  }
  const port = (app.server.address() as { port: number }).port;
  logger.info({ port, restored, gatewayUrl }, 'push proxy ready');

  let closing: Promise<void> | null = null;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    registry,
    store,
    sweep,
    streamCount: () => groups.size,
    close() {
      closing ??= (async () => {
        await task.destroy();
        for (const res of pageStreams.get(app) ?? []) res.destroy();
        await app.close();
        const all = [...groups.values()];
        for (const g of all) g.close();
        await Promise.all(all.map((g) => g.stopped()));
        store.close();
        unlock();
      })();
      return closing;
    },
  };
}

/** Pass-through SSE responses of pages, per server: ended on close. */
const pageStreams = new WeakMap<FastifyInstance, Set<ServerResponse>>();

interface HttpContext {
  readonly config: PushProxyConfig;
  readonly vapid: VapidKeys;
  readonly store: HandoffStore;
  readonly live: Map<string, { h: LiveHandoff; group: StreamGroup }>;
  readonly byEndpoint: Map<string, string>;
  readonly groups: Map<string, StreamGroup>;
  readonly metrics: PushProxyMetrics;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly gatewayUrl: string;
  readonly serve: (row: HandoffRow) => void;
  /** Stores a new hand-off (fsync'd, grouped); resolves with the id of an active one of the same subscription it replaced. */
  readonly persist: (row: HandoffRow) => Promise<string | null>;
  readonly pendingCreates: () => number;
  readonly forget: (h: LiveHandoff, group: StreamGroup) => void;
}

function buildHttp(ctx: HttpContext): FastifyInstance {
  const { config, store, live, metrics, clock } = ctx;
  const app = Fastify({ logger: false, bodyLimit: 16_384 });
  const streams = new Set<ServerResponse>();
  pageStreams.set(app, streams);
  const files = loadApp();
  const refuse = (reason: string): void => metrics.refused.inc({ reason });

  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) ctx.logger.error({ err }, 'push proxy request failed');
    if (status === 400 || status === 413 || status === 415) refuse('malformed');
    void reply.code(status).send({ error: status < 500 ? 'GW_ERR_HANDOFF_INVALID' : 'internal', message: err.message });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_req, reply) => reply.type(ctx.registry.contentType).send(await ctx.registry.metrics()));
  app.get('/v1/push/vapid-public-key', async () => ({ publicKey: ctx.vapid.publicKey }));

  app.post('/v1/handoffs', async (req, reply) => {
    const parsed = parseHandoffRequest(req.body);
    if (!parsed.ok) {
      refuse('invalid');
      return reply.code(400).send({ error: 'GW_ERR_HANDOFF_INVALID', message: parsed.problems.join('; '), problems: parsed.problems });
    }
    const { subscription, lastEventId, stream, filter } = parsed.value;
    const key = streamPath(stream, filter);
    const replacingId = ctx.byEndpoint.get(subscription.endpoint);
    const replacing = replacingId === undefined ? undefined : live.get(replacingId);
    if (replacing === undefined && live.size + ctx.pendingCreates() >= config.maxHandoffs) {
      refuse('max_handoffs');
      return reply.code(503).header('retry-after', '60').send({ error: 'GW_ERR_HANDOFF_LIMIT', message: `the proxy holds pushProxy.maxHandoffs (${config.maxHandoffs}) hand-offs` });
    }
    if ((ctx.groups.get(key)?.isClosed ?? true) && ctx.groups.size >= config.maxStreams) {
      refuse('max_streams');
      return reply.code(503).header('retry-after', '60').send({ error: 'GW_ERR_HANDOFF_LIMIT', message: `the proxy holds pushProxy.maxStreams (${config.maxStreams}) distinct streams` });
    }
    const now = clock.now();
    const row: HandoffRow = {
      id: randomBytes(16).toString('base64url'),
      subscription,
      stream,
      filter,
      streamKey: key,
      startEventId: lastEventId,
      position: lastEventId,
      delivered: 0,
      createdAt: now,
      expiresAt: now + config.handoffTtlMs,
      state: 'active',
      endedReason: null,
      endedAt: null,
    };
    // One hand-off per subscription: a second POST (no DELETE between, e.g. a page reloaded) replaces the first.
    if (replacing !== undefined) {
      await replacing.group.end(replacing.h, 'replaced', config.pushTimeoutMs + 1000);
      ctx.forget(replacing.h, replacing.group);
    }
    const replacedNow = await ctx.persist(row);
    // The same subscription handed over twice in one group commit: the earlier one is replaced.
    const earlier = replacedNow === null ? undefined : live.get(replacedNow);
    if (earlier !== undefined) {
      await earlier.group.end(earlier.h, 'replaced', config.pushTimeoutMs + 1000);
      ctx.forget(earlier.h, earlier.group);
    }
    ctx.serve(row);
    metrics.created.inc();
    return reply.code(201).send({ id: row.id, expiresAt: row.expiresAt });
  });

  app.get<{ Params: { id: string } }>('/v1/handoffs/:id', async (req, reply) => {
    const row = store.get(req.params.id);
    if (row === null) return reply.code(404).send({ error: 'not_found', message: 'no such hand-off (never made, or ended and swept)' });
    return {
      id: row.id,
      state: row.state,
      endedReason: row.endedReason,
      stream: row.stream,
      filter: row.filter,
      startEventId: idString(row.startEventId),
      lastDeliveredEventId: idString(row.position),
      delivered: row.delivered,
      queued: live.get(row.id)?.h.queue.length ?? 0,
      createdAt: row.createdAt,
      expiresAt: row.expiresAt,
      endedAt: row.endedAt,
    };
  });

  // The phone is awake and takes its stream back: the in-flight push (if any) settles first, so the
  // id answered is exactly the last one the push service took.
  app.delete<{ Params: { id: string } }>('/v1/handoffs/:id', async (req, reply) => {
    const l = live.get(req.params.id);
    if (l !== undefined) {
      await l.group.end(l.h, 'taken_back', config.pushTimeoutMs + 1000);
      ctx.forget(l.h, l.group);
    }
    const row = store.get(req.params.id);
    if (row === null) return reply.code(404).send({ error: 'not_found', message: 'no such hand-off (never made, or ended and swept)' });
    return { lastDeliveredEventId: idString(row.position), delivered: row.delivered, state: row.state, endedReason: row.endedReason };
  });

  // The page's live stream, passed through from the gateway (same origin as the page: no CORS needed).
  app.get<{ Params: { name: string } }>('/v1/streams/:name', async (req, reply) => {
    if (!STREAM_NAME.test(req.params.name)) return reply.code(400).send({ error: 'GW_ERR_HANDOFF_INVALID', message: 'not a stream name' });
    if (streams.size >= config.maxStreams) {
      refuse('max_page_streams');
      return reply.code(503).header('retry-after', '5').send({ error: 'GW_ERR_HANDOFF_LIMIT', message: `pushProxy.maxStreams (${config.maxStreams}) page streams are open` });
    }
    const abort = new AbortController();
    req.raw.on('close', () => abort.abort());
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    const last = req.headers['last-event-id'];
    if (typeof last === 'string') headers['last-event-id'] = last;
    const auth = req.headers['authorization'];
    if (typeof auth === 'string') headers['authorization'] = auth;
    else if (config.gatewayToken !== null) headers['authorization'] = `Bearer ${config.gatewayToken}`;
    let res: Response;
    try {
      const query = req.url.indexOf('?');
      res = await fetch(`${ctx.gatewayUrl}/v1/streams/${req.params.name}${query === -1 ? '' : req.url.slice(query)}`, { headers, signal: abort.signal });
    } catch (err) {
      return reply.code(502).send({ error: 'bad_gateway', message: `the gateway cannot be reached: ${(err as Error).message}` });
    }
    reply.hijack();
    const raw = reply.raw;
    streams.add(raw);
    raw.on('close', () => streams.delete(raw));
    raw.writeHead(res.status, { 'content-type': res.headers.get('content-type') ?? 'text/plain', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    raw.flushHeaders();
    try {
      if (res.body !== null) for await (const chunk of res.body) if (!raw.write(chunk)) await new Promise((r) => raw.once('drain', r).once('close', r));
    } catch {
      // The page or the gateway went away: the page's EventSource reconnects with its Last-Event-ID.
    }
    raw.end();
  });

  app.get('/app', async (_req, reply) => reply.redirect('/app/', 301));
  app.get<{ Params: { '*': string } }>('/app/*', async (req, reply) => {
    const name = req.params['*'] === '' ? 'index.html' : req.params['*'];
    const f = files.get(name);
    if (f === undefined) return reply.code(404).send({ error: 'not_found', message: `no file ${name}` });
    // The service worker may control all of /app/ (its default scope); never served stale.
    return reply.type(f.type).header('cache-control', 'no-cache').send(f.body);
  });
  return app;
}

function idString(n: number | null): string | null {
  return n === null ? null : String(n);
}

/** `pulsegate push-proxy`: runs until SIGTERM/SIGINT. */
export async function runPushProxy(config: GatewayConfig): Promise<number> {
  const logger = pino({ level: config.logLevel, base: { service: 'pulsegate-push-proxy' } });
  const proxy = await startPushProxy(config.pushProxy, { logger });
  logger.info({ app: `http://127.0.0.1:${proxy.port}/app/` }, 'phone page');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  const timer = setTimeout(() => {
    logger.error('push proxy shutdown timed out');
    process.exit(1);
  }, config.runtime.shutdownTimeoutMs);
  timer.unref();
  await proxy.close();
  logger.info('push proxy stopped');
  return 0;
}
