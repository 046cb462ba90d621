/**
 * Per-device publish rate limit: a token bucket per device id, refilled at `publishesPerSecond`
 * up to `burst` tokens; a publish takes one token. One device flooding the gateway then spends
 * its own budget, not the log's group commits and the pipeline that every device shares.
 *
 * It counts publishes, not readings: the limit is checked before the payload is decoded (a
 * refused publish costs no decode and no log append), and a batch's size is already bounded by
 * mqtt.maxPayloadBytes.
 */
export interface RateLimitOptions {
  /** null = no limit. */
  readonly publishesPerSecond: number | null;
  readonly burst: number;
  /** Buckets kept; see `PublishRateLimiter` for the overflow policy. */
  readonly maxDevices: number;
}

/**
 * "ok": within budget. "first_refusal": over budget, the first refusal since the device was last
 * within budget (the caller dead-letters this one). "refused": over budget again (counted only:
 * a dead letter per refused publish would spend the very log budget the limit protects).
 */
export type RateVerdict = 'ok' | 'first_refusal' | 'refused';

export interface PublishRateLimiter {
  take(deviceId: string, now: number): RateVerdict;
  readonly size: number;
}

interface Bucket {
  tokens: number;
  at: number;
  limited: boolean;
}

/**
 * Buckets live in a Map bounded by `maxDevices`. When it is full, buckets that have refilled
 * completely are dropped first (forgetting them changes nothing: a new bucket starts full); if
 * that frees less than 1/16 of the map, the oldest-created buckets go too (policy "evict idle,
 * then oldest"), which at worst hands an active device one fresh burst. Sweeping only when full
 * and freeing at least 1/16 keeps the cost amortised O(1) per publish.
 */
export function createRateLimiter(o: RateLimitOptions): PublishRateLimiter | null {
  const rate = o.publishesPerSecond;
  if (rate === null) return null;
  const perMs = rate / 1000;
  const fullAfterMs = o.burst / perMs;
  const buckets = new Map<string, Bucket>();

  function makeRoom(now: number): void {
    const target = Math.max(1, Math.ceil(o.maxDevices / 16));
    let freed = 0;
    for (const [id, b] of buckets) {
      if (now - b.at >= fullAfterMs) {
        buckets.delete(id);
        freed++;
      }
    }
    for (const id of buckets.keys()) {
      if (freed >= target) break;
      buckets.delete(id);
      freed++;
    }
  }

  return {
    get size() {
      return buckets.size;
    },
    take(deviceId, now) {
      let b = buckets.get(deviceId);
      if (b === undefined) {
        if (buckets.size >= o.maxDevices) makeRoom(now);
        b = { tokens: o.burst, at: now, limited: false };
        buckets.set(deviceId, b);
      } else if (now > b.at) {
        // A clock that steps back refills nothing (and never takes tokens away).
        b.tokens = Math.min(o.burst, b.tokens + (now - b.at) * perMs);
        b.at = now;
      }
      if (b.tokens >= 1) {
        b.tokens -= 1;
        b.limited = false;
        return 'ok';
      }
      if (b.limited) return 'refused';
      b.limited = true;
      return 'first_refusal';
    },
  };
}
