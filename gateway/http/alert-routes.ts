import type { FastifyPluginAsync } from 'fastify';
import type { FiringAlerts } from '../alerts/types.js';
import { compileGlob } from '../config/alert-rules.js';
import { GatewayError } from '../errors.js';
import { SEVERITIES, severityRank, type Severity } from '../wire/alert.js';
import { singleParams } from './query-params.js';

const FIRING_PARAMS = ['kind', 'device', 'rule', 'severity', 'minSeverity'] as const;
/**
 * Longest `device` glob: a device id has at most 128 characters, and a glob is matched against
 * every firing alert (work per request: its length x the id's, per alert).
 */
const MAX_DEVICE_GLOB = 256;

/**
 * GET /v1/alerts: the episodes firing now (their FIRING transition, wire format), filtered. The
 * history of transitions, GET /v1/alerts/history, is read from the store, behind the store's query
 * limiter, beside /v1/readings and /v1/windows (query-routes.ts).
 */
export function alertRoutes(options: { readonly alerts: FiringAlerts }): FastifyPluginAsync {
  return async (app) => {
    app.get('/v1/alerts', async (req) => {
      const q = singleParams(req.query, FIRING_PARAMS);
      const severity = q.severity === undefined ? null : parseSeverity('severity', q.severity);
      const minSeverity = q.minSeverity === undefined ? null : parseSeverity('minSeverity', q.minSeverity);
      if (q.device !== undefined && q.device.length > MAX_DEVICE_GLOB) throw new GatewayError('GW_ERR_QUERY_INVALID', `\`device\`: a glob of at most ${MAX_DEVICE_GLOB} characters, got ${q.device.length}`);
      const device = q.device === undefined ? null : compileGlob(q.device);
      const alerts = options.alerts.firing().filter(
        (a) =>
          (q.kind === undefined || a.kind === q.kind) &&
          (q.rule === undefined || a.rule === q.rule) &&
          (device === null || device(a.deviceId)) &&
          (severity === null || a.severity === severity) &&
          (minSeverity === null || severityRank(a.severity) >= severityRank(minSeverity)),
      );
      return { alerts, count: alerts.length };
    });
  };
}

/** A severity parameter: one of SEVERITIES, else a GW_ERR_QUERY_INVALID naming the parameter. */
export function parseSeverity(name: string, text: string): Severity {
  if (!(SEVERITIES as readonly string[]).includes(text)) throw new GatewayError('GW_ERR_QUERY_INVALID', `\`${name}\` must be one of ${SEVERITIES.join(', ')}, got "${text}"`);
  return text as Severity;
}
