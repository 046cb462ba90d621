import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { DeliveryConfig, StaticStreamConfig } from '../config/config.js';
import { GatewayError, isGatewayError, type ErrorCode } from '../errors.js';
import { SEVERITIES, type Severity } from '../wire/alert.js';
import type { DeliveryHub } from './delivery-hub.js';
import { compileFilters, EMPTY_FILTER, type CompiledFilter, type FilterSpec, type StreamSource } from './stream-filter.js';
import { checkWithinClaims, type SubscriberAuth, type SubscriberClaims } from './subscriber-auth.js';

export interface DeliveryRoutesOptions {
  readonly config: DeliveryConfig;
  readonly hub: DeliveryHub;
  readonly auth: SubscriberAuth;
  readonly registry: Registry;
  readonly logger: Logger;
}

/** Query parameters of a stream: anything else is refused (a typo would silently widen it). */
const STREAM_PARAMS = ['lastEventId', 'kind', 'device', 'rule', 'severity', 'minSeverity', 'where', 'access_token'] as const;
const POLL_PARAMS = ['after', 'waitMs', 'limit', 'kind', 'device', 'rule', 'severity', 'minSeverity', 'where', 'access_token'] as const;
const DEFAULT_POLL_WAIT_MS = 25_000;
const DEFAULT_POLL_LIMIT = 100;
/** An offset: decimal digits, no sign, no leading zero, at most 2^53 - 1. */
const OFFSET = /^(0|[1-9][0-9]{0,15})$/;

const STATUS: Partial<Record<ErrorCode, number>> = {
  GW_ERR_LAST_EVENT_ID: 400,
  GW_ERR_FILTER_INVALID: 400,
  GW_ERR_QUERY_INVALID: 400,
  GW_ERR_TOKEN_INVALID: 401,
  GW_ERR_FORBIDDEN: 403,
  GW_ERR_TOO_MANY_CLIENTS: 503,
  GW_ERR_SHUTTING_DOWN: 503,
};

/**
 * The routes of the SSE hub: GET /v1/streams/alerts, /v1/streams/windows, /v1/streams/<static
 * name> (delivery.streams) and the long-poll GET /v1/alerts/poll. Each request is checked in this
 * order: parameters and Last-Event-ID (400), token and claims (401, 403), room (503).
 */
export function deliveryRoutes(options: DeliveryRoutesOptions): FastifyPluginAsync {
  const { config, hub, auth } = options;
  const statics = new Map<string, { config: StaticStreamConfig; spec: FilterSpec }>();
  const problems: string[] = [];
  for (const [name, s] of Object.entries(config.streams)) {
    const spec: FilterSpec = { kinds: s.kinds, devices: s.devices, rules: s.rules, minSeverity: s.minSeverity, where: s.where === null ? [] : [s.where] };
    try {
      compileFilters([spec], s.source);
      statics.set(name, { config: s, spec });
    } catch (err) {
      problems.push(`delivery.streams.${name}: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) {
    throw new GatewayError('GW_ERR_CONFIG_INVALID', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  const refused = new Counter({
    name: 'pulsegate_delivery_requests_refused_total',
    help: 'Stream and long-poll requests refused, by error code',
    labelNames: ['code'],
    registers: [options.registry],
  });

  function fail(reply: FastifyReply, err: unknown): FastifyReply {
    if (!isGatewayError(err) || STATUS[err.code] === undefined) throw err;
    refused.inc({ code: err.code });
    const status = STATUS[err.code]!;
    if (status === 503) reply.header('retry-after', String(Math.max(1, Math.ceil(config.retryMs / 1000))));
    if (status === 401) reply.header('www-authenticate', 'Bearer realm="pulsegate"');
    return reply.code(status).send({ error: err.code, message: err.message });
  }

  async function claimsOf(req: FastifyRequest, q: Params): Promise<SubscriberClaims> {
    const header = req.headers.authorization;
    let token: string | null = null;
    if (typeof header === 'string' && header !== '') {
      const m = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i.exec(header);
      if (m === null) throw new GatewayError('GW_ERR_TOKEN_INVALID', 'Authorization must be "Bearer <JWT>"');
      token = m[1]!;
    } else if (q.access_token !== undefined) token = q.access_token;
    return auth.authenticate(token);
  }

  const plugin: FastifyPluginAsync = async (app) => {
    app.get<{ Params: { name: string } }>('/v1/streams/:name', async (req, reply) => {
      try {
        const name = req.params.name;
        const fixed = name === 'alerts' || name === 'windows' ? null : statics.get(name);
        if (fixed === undefined) return reply.code(404).send({ error: 'GW_ERR_QUERY_INVALID', message: `no stream ${JSON.stringify(name)}: alerts, windows${statics.size > 0 ? `, ${[...statics.keys()].join(', ')}` : ''}` });
        const source: StreamSource = fixed === null ? (name as StreamSource) : fixed.config.source;
        const q = params(req.query, STREAM_PARAMS);
        const lastEventId = parseLastEventId(req.headers['last-event-id'], q.lastEventId, hub);
        const asked = filterOf(q);
        const claims = await claimsOf(req, q);
        const specs = [asked, ...(fixed === null ? [] : [fixed.spec])];
        checkWithinClaims(claims, { stream: name, kinds: specs.flatMap((s) => s.kinds), devices: specs.flatMap((s) => s.devices) });
        const filter = compileFilters([...specs, claimsSpec(claims)], source);
        // Shutting down: the connection is dropped, not answered. An EventSource reconnects after a
        // network error (to the restarted gateway, with its Last-Event-ID) but gives up for good on
        // any non-200 answer, a 503 included.
        if (hub.closed) {
          reply.hijack();
          reply.raw.destroy();
          return reply;
        }
        if (!hub.hasRoom()) throw new GatewayError('GW_ERR_TOO_MANY_CLIENTS', `${config.maxClients} streams and long-polls are open (delivery.maxClients)`);
        reply.hijack();
        hub.subscribe(reply.raw, { stream: name, source, filter, lastEventId, expiresAt: claims.expiresAt });
        return reply;
      } catch (err) {
        return fail(reply, err);
      }
    });

    app.get('/v1/alerts/poll', async (req, reply) => {
      try {
        const q = params(req.query, POLL_PARAMS);
        const after = q.after === undefined ? null : parseOffset(q.after, 'after', hub);
        const waitMs = q.waitMs === undefined ? Math.min(DEFAULT_POLL_WAIT_MS, config.longPollMaxWaitMs) : parseInteger(q.waitMs, 'waitMs', 0, config.longPollMaxWaitMs);
        const limit = q.limit === undefined ? Math.min(DEFAULT_POLL_LIMIT, config.longPollMaxEvents) : parseInteger(q.limit, 'limit', 1, config.longPollMaxEvents);
        const asked = filterOf(q);
        const claims = await claimsOf(req, q);
        checkWithinClaims(claims, { stream: 'alerts', kinds: asked.kinds, devices: asked.devices });
        const filter = compileFilters([asked, claimsSpec(claims)], 'alerts');
        if (!hub.hasRoom()) throw new GatewayError('GW_ERR_TOO_MANY_CLIENTS', `${config.maxClients} streams and long-polls are open (delivery.maxClients)`);
        const gone = new AbortController();
        const onClose = (): void => {
          if (!reply.raw.writableFinished) gone.abort();
        };
        reply.raw.once('close', onClose);
        try {
          const result = await hub.poll({ filter, after, waitMs, limit, signal: gone.signal });
          return reply.header('cache-control', 'no-store').send({
            events: result.events,
            lastEventId: result.events.length > 0 ? String(result.events[result.events.length - 1]!.offset) : null,
            after: String(result.after),
            earliest: result.earliest === null ? null : { lastEventId: String(result.earliest.requested - 1), firstOffset: result.earliest.firstOffset },
          });
        } finally {
          reply.raw.off('close', onClose);
        }
      } catch (err) {
        return fail(reply, err);
      }
    });
  };
  return plugin;
}

type Params = Partial<Record<(typeof POLL_PARAMS)[number] | (typeof STREAM_PARAMS)[number], string>>;

function params(query: unknown, allowed: readonly string[]): Params {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((query ?? {}) as Record<string, unknown>)) {
    if (!allowed.includes(k)) throw new GatewayError('GW_ERR_QUERY_INVALID', `unknown parameter \`${k}\` (allowed: ${allowed.join(', ')})`);
    if (typeof v !== 'string') throw new GatewayError('GW_ERR_QUERY_INVALID', `parameter \`${k}\` given more than once`);
    out[k] = v;
  }
  return out;
}

function list(v: string | undefined, name: string): string[] {
  if (v === undefined) return [];
  const items = v.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new GatewayError('GW_ERR_FILTER_INVALID', `\`${name}\` has an empty item`);
  return items;
}

function filterOf(q: Params): FilterSpec {
  if (q.severity !== undefined && q.minSeverity !== undefined) throw new GatewayError('GW_ERR_FILTER_INVALID', 'give `minSeverity` or `severity`, not both');
  const sev = q.minSeverity ?? q.severity;
  if (sev !== undefined && !(SEVERITIES as readonly string[]).includes(sev)) throw new GatewayError('GW_ERR_FILTER_INVALID', `\`minSeverity\` must be one of ${SEVERITIES.join(', ')}`);
  return {
    ...EMPTY_FILTER,
    kinds: list(q.kind, 'kind'),
    devices: list(q.device, 'device'),
    rules: list(q.rule, 'rule'),
    minSeverity: (sev as Severity | undefined) ?? null,
    where: q.where === undefined ? [] : [q.where],
  };
}

/** The claims as a filter: every stream of the subscriber is narrowed to them. */
function claimsSpec(c: SubscriberClaims): FilterSpec {
  return { ...EMPTY_FILTER, kinds: c.kinds ?? [], devices: c.devices ?? [], ...(c.kinds !== null && c.kinds.length === 0 ? { kinds: ['\u0000'] } : {}), ...(c.devices !== null && c.devices.length === 0 ? { devices: ['\u0000'] } : {}) };
}

function parseOffset(text: string, name: string, hub: DeliveryHub): number {
  if (!OFFSET.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new GatewayError('GW_ERR_LAST_EVENT_ID', `${name} must be a log offset (decimal digits), got ${JSON.stringify(text.slice(0, 40))}`);
  }
  const n = Number(text);
  // Ids a client got from this log are below its end; a larger one is from another log (data directory replaced).
  if (n >= hub.logEnd()) {
    throw new GatewayError('GW_ERR_LAST_EVENT_ID', `${name} ${n} is beyond the end of this log (${hub.logEnd()}): it is not an id this gateway sent`);
  }
  return n;
}

/** The Last-Event-ID header wins over ?lastEventId= (EventSource sends the header on reconnect; the query keeps the first id). */
function parseLastEventId(header: string | string[] | undefined, query: string | undefined, hub: DeliveryHub): number | null {
  if (Array.isArray(header)) throw new GatewayError('GW_ERR_LAST_EVENT_ID', 'Last-Event-ID given more than once');
  if (header !== undefined && header !== '') return parseOffset(header, 'Last-Event-ID', hub);
  if (query !== undefined && query !== '') return parseOffset(query, 'lastEventId', hub);
  return null;
}

function parseInteger(text: string, name: string, min: number, max: number): number {
  if (!/^[0-9]{1,9}$/.test(text)) throw new GatewayError('GW_ERR_QUERY_INVALID', `\`${name}\` must be decimal digits`);
  const n = Number(text);
  if (n < min || n > max) throw new GatewayError('GW_ERR_QUERY_INVALID', `\`${name}\` must be between ${min} and ${max}`);
  return n;
}
