import { SEVERITIES } from '../wire/alert.js';
import type { PushSubscriptionJson, StreamFilter } from './handoff-store.js';

/** The filters of the gateway's streams that a hand-off may carry (query parameters). */
export const FILTER_KEYS = ['kind', 'device', 'rule', 'minSeverity', 'where'] as const;
/** A stream name: also what keeps a passed-through page stream on /v1/streams/ of the gateway (no `..`). */
export const STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const B64URL = /^[A-Za-z0-9_-]+={0,2}$/;

export interface HandoffRequest {
  readonly subscription: PushSubscriptionJson;
  readonly lastEventId: number | null;
  readonly stream: string;
  readonly filter: StreamFilter;
}

/** Checks a POST /v1/handoffs body; returns it normalized, or every problem found. */
export function parseHandoffRequest(body: unknown): { ok: true; value: HandoffRequest } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ok: false, problems: ['the body must be a JSON object'] };
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!['subscription', 'lastEventId', 'stream', 'filter'].includes(k)) problems.push(`unknown field "${k}"`);

  let subscription: PushSubscriptionJson | null = null;
  const s = b['subscription'];
  if (typeof s !== 'object' || s === null) problems.push('subscription: must be a PushSubscription as JSON ({ endpoint, keys: { p256dh, auth } })');
  else {
    const sub = s as Record<string, unknown>;
    const keys = (typeof sub['keys'] === 'object' && sub['keys'] !== null ? sub['keys'] : {}) as Record<string, unknown>;
    const endpoint = sub['endpoint'];
    let url: URL | null = null;
    try {
      url = typeof endpoint === 'string' && endpoint.length <= 2048 ? new URL(endpoint) : null;
    } catch {
      url = null; // reported below
    }
    // RFC 8030 section 8: the push service is reached over https only (web-push refuses anything else).
    if (url === null) problems.push('subscription.endpoint: must be an absolute URL of at most 2048 characters');
    else if (url.protocol !== 'https:') problems.push(`subscription.endpoint: must be https, got ${url.protocol}`);
    const p256dh = keyBytes(keys['p256dh']);
    if (p256dh === null || p256dh.length !== 65 || p256dh[0] !== 0x04) problems.push('subscription.keys.p256dh: must be an uncompressed P-256 point (65 bytes, base64url)');
    const auth = keyBytes(keys['auth']);
    if (auth === null || auth.length !== 16) problems.push('subscription.keys.auth: must be 16 bytes, base64url');
    if (problems.length === 0) subscription = { endpoint: endpoint as string, keys: { p256dh: keys['p256dh'] as string, auth: keys['auth'] as string } };
  }

  let lastEventId: number | null = null;
  const id = b['lastEventId'];
  if (typeof id === 'string' && /^[0-9]{1,15}$/.test(id)) lastEventId = Number(id);
  else if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) lastEventId = id;
  else if (!(id === undefined || id === null || id === '')) problems.push('lastEventId: must be the id of an event of the stream (decimal digits), or null when none was received');

  const stream = b['stream'] ?? 'alerts';
  if (typeof stream !== 'string' || !STREAM_NAME.test(stream)) problems.push('stream: must be a stream name (letters, digits, _ -; at most 64), e.g. "alerts"');

  const filter: Record<string, string> = {};
  const f = b['filter'] ?? {};
  if (typeof f !== 'object' || f === null || Array.isArray(f)) problems.push('filter: must be an object of strings');
  else {
    for (const [k, v] of Object.entries(f as Record<string, unknown>)) {
      if (!(FILTER_KEYS as readonly string[]).includes(k)) problems.push(`filter.${k}: unknown filter (known: ${FILTER_KEYS.join(', ')})`);
      else if (typeof v !== 'string' || v.length === 0 || v.length > (k === 'where' ? 1024 : 128)) problems.push(`filter.${k}: must be a non-empty string of at most ${k === 'where' ? 1024 : 128} characters`);
      else if (k === 'minSeverity' && !(SEVERITIES as readonly string[]).includes(v)) problems.push(`filter.minSeverity: must be one of ${SEVERITIES.join(', ')}`);
      else filter[k] = v;
    }
  }
  if (problems.length > 0 || subscription === null) return { ok: false, problems };
  return { ok: true, value: { subscription, lastEventId, stream: stream as string, filter } };
}

function keyBytes(v: unknown): Buffer | null {
  return typeof v === 'string' && v.length <= 256 && B64URL.test(v) ? Buffer.from(v.replace(/=+$/, ''), 'base64url') : null;
}

/** stream + filter in a canonical order: the key of the one connection shared by its hand-offs, and its path. */
export function streamPath(stream: string, filter: StreamFilter): string {
  const q = new URLSearchParams(Object.entries(filter).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))).toString();
  return `/v1/streams/${encodeURIComponent(stream)}${q === '' ? '' : `?${q}`}`;
}
