import type { Agent } from 'node:https';
import webpush from 'web-push';
import type { AlertEvent, Severity } from '../wire/alert.js';
import type { VapidKeys } from './vapid-keys.js';
import type { PushSubscriptionJson } from './handoff-store.js';
import { parseRetryAfter } from './sse-client.js';

/** What the push service's answer means for the hand-off (RFC 8030 sections 5, 6.2, 7.3). */
export type PushOutcome =
  | { readonly kind: 'acked' }
  /** 404/410: the subscription is gone; the hand-off ends. */
  | { readonly kind: 'gone'; readonly status: number }
  /** 413: the payload is too large. */
  | { readonly kind: 'too_large' }
  /** 429, 5xx, a network error or a timeout: try again later (after Retry-After when given). */
  | { readonly kind: 'retry'; readonly status: number | null; readonly retryAfterMs: number | null; readonly message: string }
  /** Any other answer (400, 401, 403, ...): retrying the same request cannot help; the hand-off ends. */
  | { readonly kind: 'rejected'; readonly status: number; readonly message: string };

/** Urgency (RFC 8030 section 5.3) from the alert's severity: a resolved alert is never urgent. */
export function urgencyOf(alert: Pick<AlertEvent, 'severity' | 'state'>): 'low' | 'normal' | 'high' {
  if (alert.state === 'RESOLVED') return 'low';
  const map: Record<Severity, 'low' | 'normal' | 'high'> = { info: 'low', warning: 'normal', critical: 'high' };
  return map[alert.severity];
}

/** The decrypted body the service worker gets: the SSE event id is its dedupe key. */
export interface PushPayload {
  readonly v: 1;
  readonly eventId: string;
  readonly stream: string;
  /** The full alert; absent in the small form sent after a 413. */
  readonly alert?: AlertEvent;
  /** Small form: the alert id and its summary only. */
  readonly id?: string;
  readonly summary?: string;
}

export function pushPayload(stream: string, eventId: number, alert: AlertEvent, small: boolean): string {
  const p: PushPayload = small ? { v: 1, eventId: String(eventId), stream, id: alert.id, summary: alert.summary } : { v: 1, eventId: String(eventId), stream, alert };
  return JSON.stringify(p);
}

export interface PushSenderOptions {
  readonly vapid: VapidKeys;
  readonly subject: string;
  readonly ttlSeconds: number;
  readonly timeoutMs: number;
  /** For push services behind a private CA (tests); default: Node's. */
  readonly agent?: Agent;
}

export type PushSender = (subscription: PushSubscriptionJson, payload: string, alert: AlertEvent) => Promise<PushOutcome>;

/** Sends one encrypted push (RFC 8291 aes128gcm, VAPID RFC 8292) with web-push, and classifies the answer. */
export function createPushSender(options: PushSenderOptions): PushSender {
  const authorization = vapidAuthorization(options);
  return async (subscription, payload, alert) => {
    try {
      await webpush.sendNotification(subscription, payload, {
        headers: { Authorization: authorization(subscription.endpoint) },
        TTL: options.ttlSeconds,
        urgency: urgencyOf(alert),
        // RFC 8030 section 5.4: a newer push with the same Topic replaces an undelivered older one.
        // The alert's episode id is 32 hex digits: within the 32 base64url characters allowed.
        topic: alert.id,
        contentEncoding: 'aes128gcm',
        timeout: options.timeoutMs,
        ...(options.agent === undefined ? {} : { agent: options.agent }),
      });
      return { kind: 'acked' };
    } catch (err) {
      return classify(err);
    }
  };
}

/** A VAPID JWT is valid this long (RFC 8292 section 2: at most 24 h)... */
const VAPID_JWT_TTL_S = 12 * 3600;
/** ...and is signed anew after this (well before it expires). */
const VAPID_REUSE_MS = 3_600_000;
/** Push service origins with a JWT kept; past it the cache is emptied (policy: clear). */
const MAX_VAPID_AUDIENCES = 1000;

/**
 * The `Authorization: vapid t=<JWT>, k=<key>` header per push service origin (the JWT's `aud`),
 * signed once and reused for an hour: signing is the costly part of a push with web-push (its key
 * conversion and ES256 signature take milliseconds), and RFC 8292 lets a JWT serve many requests.
 */
function vapidAuthorization(options: PushSenderOptions): (endpoint: string) => string {
  const cache = new Map<string, { header: string; madeAt: number }>();
  return (endpoint) => {
    const audience = new URL(endpoint).origin;
    const now = Date.now();
    const hit = cache.get(audience);
    if (hit !== undefined && now - hit.madeAt < VAPID_REUSE_MS) return hit.header;
    if (cache.size >= MAX_VAPID_AUDIENCES) cache.clear();
    const h = webpush.getVapidHeaders(audience, options.subject, options.vapid.publicKey, options.vapid.privateKey, 'aes128gcm', Math.floor(now / 1000) + VAPID_JWT_TTL_S);
    const header = String(h.Authorization);
    cache.set(audience, { header, madeAt: now });
    return header;
  };
}

function classify(err: unknown): PushOutcome {
  const e = err as { statusCode?: unknown; headers?: Record<string, string | string[] | undefined>; message?: string };
  const message = String(e.message ?? err);
  if (typeof e.statusCode !== 'number') return { kind: 'retry', status: null, retryAfterMs: null, message };
  const status = e.statusCode;
  if (status === 404 || status === 410) return { kind: 'gone', status };
  if (status === 413) return { kind: 'too_large' };
  if (status === 429 || status >= 500) {
    const h = e.headers?.['retry-after'];
    return { kind: 'retry', status, retryAfterMs: parseRetryAfter(Array.isArray(h) ? h[0] : h, Date.now()), message };
  }
  return { kind: 'rejected', status, message };
}
