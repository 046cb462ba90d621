import { Counter, Gauge, type Registry } from 'prom-client';
import { GatewayError } from '../errors.js';

/** Why a query was refused with 503. */
export const QUERY_REJECT_REASONS = ['queue_full', 'queue_timeout'] as const;
export type QueryRejectReason = (typeof QUERY_REJECT_REASONS)[number];

export interface QueryLimiterOptions {
  /** Queries running at once. */
  readonly maxConcurrent: number;
  /** Queries waiting for a slot; one more is refused at once (overflow policy: reject the newest). */
  readonly maxQueued: number;
  /** Longest wait for a slot before the query is refused. */
  readonly queueTimeoutMs: number;
  readonly registry?: Registry;
}

export interface QueryLimiter {
  /**
   * Runs `task` when a slot is free, in arrival order. Rejects with a retryable GW_ERR_BUSY
   * (details.reason: queue_full | queue_timeout) when the queue is full or the wait times out,
   * and with the signal's reason when it aborts while waiting (the client went away).
   */
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  readonly inFlight: number;
  readonly queued: number;
}

interface Waiter {
  readonly grant: () => void;
  settled: boolean;
}

/**
 * Bounds the store queries of the HTTP API. Every result of a query is copied from the sink
 * thread and serialized to JSON on the gateway's main thread, the one that runs MQTT ingest, so
 * without a bound a burst of large queries holds that thread for seconds: PUBACKs wait behind it.
 */
export function createQueryLimiter(options: QueryLimiterOptions): QueryLimiter {
  const { maxConcurrent, maxQueued, queueTimeoutMs, registry } = options;
  const waiting: Waiter[] = [];
  let running = 0;

  const registers = registry === undefined ? [] : [registry];
  const inFlightGauge = new Gauge({ name: 'pulsegate_http_queries_in_flight', help: 'Store queries of the HTTP API running now', registers });
  const queuedGauge = new Gauge({ name: 'pulsegate_http_queries_queued', help: 'Store queries of the HTTP API waiting for a slot', registers });
  const rejected = new Counter({
    name: 'pulsegate_http_queries_rejected_total',
    help: 'Store queries of the HTTP API refused with 503, by reason',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of QUERY_REJECT_REASONS) rejected.labels(reason).inc(0);

  function busy(reason: QueryRejectReason): GatewayError {
    rejected.labels(reason).inc();
    const message =
      reason === 'queue_full'
        ? `too many queries at once (${maxConcurrent} running, ${maxQueued} waiting); retry later`
        : `no query slot became free within ${queueTimeoutMs} ms; retry later`;
    return new GatewayError('GW_ERR_BUSY', message, { retryable: true, details: { reason } });
  }

  function release(): void {
    // A slot passes straight to the oldest waiter, so `running` never exceeds the bound.
    const next = waiting.shift();
    queuedGauge.set(waiting.length);
    if (next === undefined) {
      running--;
      inFlightGauge.set(running);
      return;
    }
    next.settled = true;
    next.grant();
  }

  async function runNow<T>(task: () => Promise<T>): Promise<T> {
    try {
      return await task();
    } finally {
      release();
    }
  }

  return {
    get inFlight() {
      return running;
    },
    get queued() {
      return waiting.length;
    },
    run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
      if (signal?.aborted) return Promise.reject(signal.reason as Error);
      if (running < maxConcurrent) {
        running++;
        inFlightGauge.set(running);
        return runNow(task);
      }
      if (waiting.length >= maxQueued) return Promise.reject(busy('queue_full'));
      return new Promise<T>((resolve, reject) => {
        const leave = (err: Error): void => {
          if (waiter.settled) return;
          waiter.settled = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          const i = waiting.indexOf(waiter);
          if (i >= 0) waiting.splice(i, 1);
          queuedGauge.set(waiting.length);
          reject(err);
        };
        const onAbort = (): void => leave(signal!.reason as Error);
        const waiter: Waiter = {
          settled: false,
          grant: () => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            runNow(task).then(resolve, reject);
          },
        };
        const timer = setTimeout(() => leave(busy('queue_timeout')), queueTimeoutMs);
        signal?.addEventListener('abort', onAbort, { once: true });
        waiting.push(waiter);
        queuedGauge.set(waiting.length);
      });
    },
  };
}
