/** Retry backoff and stopping, shared by the log's senders and consumers (outbox.ts, log-consumer.ts). */

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

/** Failed attempts worth a log line: the first and every tenth (the rest are counted only). */
export function isLoggedAttempt(attempt: number): boolean {
  return attempt === 1 || attempt % 10 === 0;
}

/**
 * The two-step stop of a reader loop: backoff sleeps and idle waits end at once, the work in
 * flight (a send, a handler) gets a grace period before its signal aborts.
 */
export interface StopSignals {
  /** Aborted at once by stop(). */
  readonly idle: AbortSignal;
  /** Aborted by stop() after the grace. */
  readonly work: AbortSignal;
  /** Aborts `idle`, gives `running` up to `graceMs` to end by itself, then aborts `work` and waits for `running`. */
  stop(running: Promise<void> | null, graceMs: number): Promise<void>;
}

export function createStopSignals(): StopSignals {
  const idle = new AbortController();
  const work = new AbortController();
  return {
    idle: idle.signal,
    work: work.signal,
    async stop(running, graceMs) {
      idle.abort();
      if (running !== null && graceMs > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([running, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
        clearTimeout(timer);
      }
      work.abort();
      if (running !== null) await running;
    },
  };
}
