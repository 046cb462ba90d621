import { createHmac, timingSafeEqual } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Counter, Histogram, type Registry } from 'prom-client';
import { systemClock, type Clock } from '../clock.js';
import type { WebhookConfig } from '../config/config.js';
import { GatewayError } from '../errors.js';
import type { LogRecord } from '../log/types.js';
import { decodeAlertTransition, severityRank, toAlertEvent, type AlertEvent } from '../wire/alert.js';

/**
 * One outbound webhook (delivery.webhooks): the handler of its own log consumer
 * (webhook-<name>, wired by main.ts), so an alert is POSTed only once it is in the log, and the
 * consumer's cursor moves past it only after a 2xx (sender-based logging: logged before, acked
 * after). A crash before the cursor is written POSTs it again: receivers dedupe by the
 * Idempotency-Key, which is the same for every attempt of one transition (`<alert id>:<state>`).
 *
 * Each request is signed: `Pulsegate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
 * "<t>.<body>" under the secret>` (verifyWebhookSignature shows how to check it).
 *
 * Answers: 2xx delivered; 408, 425, 429, 5xx, timeouts and network errors are retried with
 * backoff (the consumer's, gateway/backoff.ts) up to `maxAttempts`; any other answer (a 4xx:
 * the receiver refuses this request as it is) and the last failed attempt refuse the alert for
 * good: the consumer dead-letters it and goes on.
 */
export const SIGNATURE_HEADER = 'Pulsegate-Signature';
/** Bytes of an answer read (and dropped) so the connection can be reused; the rest is not read. */
const MAX_ANSWER_BYTES = 64 * 1024;
const RETRYABLE_STATUS = new Set([408, 425, 429]);

export interface WebhookMetrics {
  readonly delivered: Counter<'webhook'>;
  readonly failedAttempts: Counter<'webhook' | 'reason'>;
  readonly deadLettered: Counter<'webhook'>;
  readonly filtered: Counter<'webhook'>;
  readonly latency: Histogram<'webhook'>;
}

const metricsByRegistry = new WeakMap<Registry, WebhookMetrics>();

/** The per-endpoint webhook metrics of a registry (one set, label `webhook`). */
export function webhookMetrics(registry: Registry): WebhookMetrics {
  let m = metricsByRegistry.get(registry);
  if (m === undefined) {
    const registers = [registry];
    m = {
      delivered: new Counter({ name: 'pulsegate_webhook_delivered_total', help: 'Alerts a webhook endpoint accepted (2xx)', labelNames: ['webhook'], registers }),
      failedAttempts: new Counter({ name: 'pulsegate_webhook_failed_attempts_total', help: 'Webhook POSTs that failed, by reason (status_<code>, timeout, network)', labelNames: ['webhook', 'reason'], registers }),
      deadLettered: new Counter({ name: 'pulsegate_webhook_dead_lettered_total', help: 'Alerts given up on (maxAttempts reached or refused with a 4xx) and dead-lettered', labelNames: ['webhook'], registers }),
      filtered: new Counter({ name: 'pulsegate_webhook_filtered_total', help: "Alerts passed over by a webhook's filter", labelNames: ['webhook'], registers }),
      latency: new Histogram({ name: 'pulsegate_webhook_latency_seconds', help: 'Time of a successful webhook POST, request to answer', labelNames: ['webhook'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers }),
    };
    metricsByRegistry.set(registry, m);
  }
  return m;
}

export interface WebhookSenderOptions {
  readonly config: WebhookConfig;
  readonly clock?: Clock;
  readonly registry?: Registry;
}

export interface WebhookSender {
  readonly name: string;
  /** The log consumer's `handle`: resolves once delivered (or filtered out); rejects to be retried or dead-lettered. */
  handle(record: Pick<LogRecord, 'offset' | 'payload'>, context: { readonly attempt: number; readonly signal: AbortSignal }): Promise<void>;
  /** Counts a dead letter (the consumer's onRefused, after the record is written). */
  deadLettered(): void;
  matches(event: AlertEvent): boolean;
}

export function createWebhookSender(options: WebhookSenderOptions): WebhookSender {
  const { config } = options;
  const clock = options.clock ?? systemClock;
  const metrics = options.registry === undefined ? null : webhookMetrics(options.registry);
  const label = { webhook: config.name };
  if (metrics !== null) {
    metrics.delivered.inc(label, 0);
    metrics.deadLettered.inc(label, 0);
    metrics.filtered.inc(label, 0);
  }
  const url = new URL(config.url);
  const kinds = new Set(config.filter.sensorKinds);
  const rules = new Set(config.filter.rules);
  const minRank = severityRank(config.filter.minSeverity);

  function matches(event: AlertEvent): boolean {
    return (kinds.size === 0 || kinds.has(event.kind)) && (rules.size === 0 || rules.has(event.rule)) && severityRank(event.severity) >= minRank;
  }

  function fail(reason: string, message: string, attempt: number, retryable: boolean, cause?: unknown): GatewayError {
    metrics?.failedAttempts.inc({ ...label, reason });
    const last = attempt >= config.maxAttempts;
    const text = `webhook ${config.name}: ${message}${retryable && last ? ` (attempt ${attempt} of ${config.maxAttempts}: giving up)` : ''}`;
    return new GatewayError('GW_ERR_WEBHOOK_DELIVERY', text, { cause, retryable: retryable && !last, details: { webhook: config.name, reason, attempt } });
  }

  return {
    name: config.name,
    matches,
    deadLettered() {
      metrics?.deadLettered.inc(label);
    },
    async handle(record, context) {
      let event: AlertEvent;
      try {
        event = toAlertEvent(decodeAlertTransition(record.payload), record.offset);
      } catch (cause) {
        throw new GatewayError('GW_ERR_DECODE', `alert record ${record.offset} is not an alert transition: ${(cause as Error).message}`, { cause, retryable: false });
      }
      if (!matches(event)) {
        metrics?.filtered.inc(label);
        return;
      }
      const body = Buffer.from(JSON.stringify(event), 'utf8');
      const timestamp = Math.floor(clock.now() / 1000);
      const headers = {
        'content-type': 'application/json',
        'content-length': String(body.length),
        'idempotency-key': `${event.id}:${event.state}`,
        [SIGNATURE_HEADER.toLowerCase()]: signWebhook(config.secret, timestamp, body),
        'user-agent': 'pulsegate-webhook/1',
      };
      const started = performance.now();
      let status: number;
      try {
        status = await post(url, headers, body, config.timeoutMs, context.signal);
      } catch (err) {
        if (context.signal.aborted) throw err;
        const timedOut = err instanceof Error && err.name === 'TimeoutError';
        throw fail(timedOut ? 'timeout' : 'network', timedOut ? `no answer within ${config.timeoutMs} ms` : `POST failed: ${(err as Error).message}`, context.attempt, true, err);
      }
      if (status >= 200 && status < 300) {
        metrics?.latency.observe(label, (performance.now() - started) / 1000);
        metrics?.delivered.inc(label);
        return;
      }
      const retryable = status >= 500 || RETRYABLE_STATUS.has(status);
      throw fail(`status_${status}`, `answered ${status}`, context.attempt, retryable);
    },
  };
}

/** Resolves with the status code of the answer (its body read up to a bound, then dropped). */
function post(url: URL, headers: Record<string, string>, body: Buffer, timeoutMs: number, signal: AbortSignal): Promise<number> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const timeout = AbortSignal.timeout(timeoutMs);
  const both = AbortSignal.any([timeout, signal]);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers, signal: both }, (res: IncomingMessage) => {
      let read = 0;
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_ANSWER_BYTES) res.destroy();
      });
      res.on('error', () => undefined);
      res.on('close', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', (err) => reject(timeout.aborted ? Object.assign(new Error(`timed out after ${timeoutMs} ms`), { name: 'TimeoutError', cause: err }) : err));
    req.end(body);
  });
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export function signWebhook(secret: string, timestampSeconds: number, body: Buffer | string): string {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.`).update(body).digest('hex');
  return `t=${timestampSeconds},v1=${mac}`;
}

/**
 * How a receiver checks a request: recompute the HMAC over "<t>.<raw body>" and compare in
 * constant time; refuse a timestamp further than `toleranceSeconds` from now (replays).
 */
export function verifyWebhookSignature(secret: string, header: string | undefined, body: Buffer | string, nowSeconds: number, toleranceSeconds = 300): boolean {
  if (header === undefined) return false;
  const parts = new Map(header.split(',').map((p) => p.trim().split('=', 2) as [string, string]));
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1');
  if (!Number.isInteger(t) || v1 === undefined || !/^[0-9a-f]{64}$/.test(v1)) return false;
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, t, body).slice(`t=${t},v1=`.length), 'hex');
  return timingSafeEqual(expected, Buffer.from(v1, 'hex'));
}
