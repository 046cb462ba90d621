/** Retry backoff shared by the log's senders and consumers (outbox.ts, log-consumer.ts). */

export interface RetryPolicy {
  /** Delay before the second attempt, ms; it doubles per attempt... */
  readonly initialMs: number;
  /** ...up to this, ms. */
  readonly maxMs: number;
}

/**
 * Delay before retrying after `attempt` failed attempts (1 = the first failed). "Equal jitter":
 * half fixed, half random, so the retries of many senders spread out.
 */
export function backoffMs(retry: RetryPolicy, attempt: number, random: () => number): number {
  const base = Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 30));
  return base / 2 + (base / 2) * random();
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
