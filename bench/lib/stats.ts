/** Small statistics helpers: a log-bucketed latency histogram (1 % resolution), percentiles, medians. */

const BUCKETS_PER_E = 100; // bucket i covers [e^((i-1)/100), e^(i/100)) microseconds: ~1 % wide
const MAX_BUCKET = Math.ceil(Math.log(1e9) * BUCKETS_PER_E); // up to 1000 s

export interface LatencySummary {
  readonly n: number;
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

/** Latencies in milliseconds, recorded into ~1 %-wide buckets (constant memory, O(1) per sample). */
export class LatencyHistogram {
  private readonly counts = new Float64Array(MAX_BUCKET + 1);
  private n = 0;
  private maxMs = 0;

  record(ms: number): void {
    const us = Math.max(ms * 1000, 1);
    const i = Math.min(MAX_BUCKET, Math.ceil(Math.log(us) * BUCKETS_PER_E));
    this.counts[i] = this.counts[i]! + 1;
    this.n++;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  get count(): number {
    return this.n;
  }

  /** Upper edge of the bucket holding the q-quantile, in ms (within ~1 % of the exact value). */
  quantile(q: number): number | null {
    if (this.n === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i <= MAX_BUCKET; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(Math.exp(i / BUCKETS_PER_E) / 1000, this.maxMs);
    }
    return this.maxMs;
  }

  summary(): LatencySummary {
    return { n: this.n, p50: this.quantile(0.5), p90: this.quantile(0.9), p99: this.quantile(0.99), max: this.n === 0 ? null : this.maxMs };
  }
}

/** Exact percentiles of a small sample (nearest rank). */
export function summarize(samples: readonly number[]): LatencySummary {
  if (samples.length === 0) return { n: 0, p50: null, p90: null, p99: null, max: null };
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1]! };
}

/** Percentiles where some samples are only known to be at least some value (still pending). */
export interface CensoredSummary extends LatencySummary {
  /** Samples only known as lower bounds (e.g. windows not yet emitted when the run ended). */
  readonly censored: number;
  /** Whether p50 / p99 are lower bounds rather than exact values. */
  readonly p50AtLeast: boolean;
  readonly p99AtLeast: boolean;
}

/**
 * Percentiles over exact samples plus lower bounds. Every true order statistic is >= the one
 * computed this way; it is exact when no lower bound lies at or below it.
 */
export function summarizeCensored(exact: readonly number[], atLeast: readonly number[]): CensoredSummary {
  const all = summarize([...exact, ...atLeast]);
  const minBound = atLeast.length === 0 ? Infinity : Math.min(...atLeast);
  return {
    ...all,
    censored: atLeast.length,
    p50AtLeast: all.p50 !== null && minBound <= all.p50,
    p99AtLeast: all.p99 !== null && minBound <= all.p99,
  };
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Monotonic time in milliseconds (CLOCK_MONOTONIC: comparable across processes on one Linux host). */
export function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
