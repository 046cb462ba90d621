import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Registry } from 'prom-client';
import { loadConfig } from '../../../gateway/config/load-config.js';
import type { GatewayConfig } from '../../../gateway/config/config.js';
import { createDeliveryHub, type DeliveryHub, type TailFn } from '../../../gateway/delivery/delivery-hub.js';
import { deliveryRoutes } from '../../../gateway/delivery/delivery-routes.js';
import { createSubscriberAuth } from '../../../gateway/delivery/subscriber-auth.js';
import { createHttpServer, type HttpServer } from '../../../gateway/http/http-server.js';
import { createMessageLog, type FileMessageLog } from '../../../gateway/log/message-log.js';
import { tailLog } from '../../../gateway/log/tail-reader.js';
import { RECORD_TYPES, type LogRecord } from '../../../gateway/log/types.js';
import { createRegistry } from '../../../gateway/metrics.js';
import { SEVERITIES, ALERT_STATES, alertId, encodeAlertTransition, type AlertTransition } from '../../../gateway/wire/alert.js';

export interface Hub {
  readonly log: FileMessageLog;
  readonly hub: DeliveryHub;
  readonly http: HttpServer;
  readonly registry: Registry;
  readonly config: GatewayConfig;
  url(path: string): string;
  /** Appends an alert (durable) and returns its offset. */
  appendAlert(t: AlertTransition): Promise<number>;
  /** Appends a record that is not an alert (an ingest record's bytes), as real logs interleave them. */
  appendOther(): Promise<number>;
  /** Every alert record of the log, in offset order. */
  alertRecords(): Promise<LogRecord[]>;
  close(): Promise<void>;
}

/** A real log in a temporary directory, the hub on it, and a real fastify server on port 0 serving its routes. */
export async function startHub(overrides: Record<string, unknown> = {}, logOptions: { segmentMaxBytes?: number } = {}, wrapTail?: (tail: TailFn) => TailFn): Promise<Hub> {
  const dir = mkdtempSync(join(tmpdir(), 'pg-sse-'));
  const config = loadConfig({
    env: {},
    overrides: { dataDir: dir, ...overrides, http: { port: 0, host: '127.0.0.1', allowAnonymous: true, ...(overrides['http'] as object | undefined) } },
  });
  const log = await createMessageLog({ dir: join(dir, 'log'), groupCommitIntervalMs: 0, fileCheckIntervalMs: 0, ...logOptions });
  await log.start();
  const registry = createRegistry();
  const logger = pino({ level: 'silent' });
  const hub = createDeliveryHub({
    config: config.delivery,
    log: { tail: (wrapTail ?? ((t) => t))((from, o) => tailLog(log, from, o)), firstOffset: () => log.firstOffset, nextOffset: () => log.nextOffset, recordTypes: { alert: RECORD_TYPES.alert, window: RECORD_TYPES.window } },
    registry,
    logger,
  });
  hub.start();
  const auth = createSubscriberAuth(config.delivery.auth, config.http.allowAnonymous);
  const http = createHttpServer({ config: config.http, registry, logger, notReadyReason: () => null, plugins: [deliveryRoutes({ config: config.delivery, hub, auth, registry, logger })] });
  const port = await http.start();
  return {
    log,
    hub,
    http,
    registry,
    config,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    appendAlert: (t) => log.appendDurable(RECORD_TYPES.alert, encodeAlertTransition(t)),
    appendOther: () => log.appendDurable(RECORD_TYPES.ingest, Buffer.from('not an alert')),
    async alertRecords() {
      const out: LogRecord[] = [];
      for await (const r of log.read(log.firstOffset)) if (r.type === RECORD_TYPES.alert) out.push({ ...r, payload: Buffer.from(r.payload) });
      return out;
    },
    async close() {
      await hub.close();
      await http.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const KINDS = ['heart_rate', 'bridge'] as const;
export const RULES = ['hr_high', 'hr_low', 'truck_load', 'silence'] as const;

/** A random but valid alert transition (seeded by `rand`). */
export function randomAlert(rand: () => number, i: number): AlertTransition {
  const kind = KINDS[Math.floor(rand() * KINDS.length)]!;
  const deviceId = `${kind === 'bridge' ? 'br' : 'hr'}-${Math.floor(rand() * 6)}`;
  const rule = RULES[Math.floor(rand() * RULES.length)]!;
  const group: Record<string, string> = kind === 'bridge' ? { vehicleClass: ['CAR', 'TRUCK', 'BUS'][Math.floor(rand() * 3)]!, lane: String(1 + Math.floor(rand() * 3)) } : {};
  const episodeStart = 1_700_000_000_000 + i * 1000;
  const value = rand() < 0.15 ? null : Math.round(rand() * 2000) / 10;
  return {
    v: 1,
    id: alertId(rule, `${kind}/${deviceId}`, episodeStart),
    rule,
    ruleKind: rule === 'silence' ? 'silence' : 'threshold',
    severity: SEVERITIES[Math.floor(rand() * SEVERITIES.length)]!,
    state: ALERT_STATES[Math.floor(rand() * 2)]!,
    kind,
    deviceId,
    group,
    value,
    threshold: value === null ? null : 100,
    windowStart: episodeStart,
    windowEnd: episodeStart + 10_000,
    episodeStart,
    firedAt: episodeStart + 10_000,
    resolvedAt: null,
    summary: `${rule} on ${deviceId} #${i}`,
  };
}
