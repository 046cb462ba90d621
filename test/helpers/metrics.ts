import { waitForValue } from './wait.js';

/** Fetches the Prometheus text exposition of a running gateway. */
export async function scrape(httpPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
  if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/;
const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;

function labelKey(labels: string): string {
  return labels
    .split(',')
    .filter((s) => s !== '')
    .sort()
    .join(',');
}

function labelNames(key: string): string[] {
  return key === '' ? [] : key.split(',').map((kv) => kv.slice(0, kv.indexOf('=')));
}

/** Whether the exposition declares `name` (a `# TYPE` line, also the family of a histogram/summary sample name). */
function declared(text: string, name: string): boolean {
  if (text.includes(`\n# TYPE ${name} `) || text.startsWith(`# TYPE ${name} `)) return true;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (name.endsWith(suffix) && declared(text, name.slice(0, -suffix.length))) return true;
  }
  return false;
}

interface Lookup {
  readonly value: number | null;
  readonly declared: boolean;
  /** Label key sets seen on samples of this name. */
  readonly seen: string[];
}

function lookup(text: string, name: string, labels: Record<string, string>): Lookup {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  const seen: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = SAMPLE_LINE.exec(line);
    if (!m || m[1] !== name) continue;
    const have = labelKey(m[2] ?? '');
    if (have === want) return { value: Number(m[3]), declared: true, seen };
    seen.push(have);
  }
  return { value: null, declared: seen.length > 0 || declared(text, name), seen };
}

/**
 * Reads one sample from a Prometheus text exposition: metric name plus exact label set.
 * Throws when no metric of that name is in the exposition at all (a renamed or unregistered
 * metric must not read as 0), and when its samples carry none of the asked label names (a
 * renamed label). A declared metric without a sample for this label set reads 0: a labelled
 * counter shows a label set only once it was incremented.
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const r = lookup(text, name, labels);
  if (r.value !== null) return r.value;
  if (!r.declared) throw new Error(`metric ${name} is not in the exposition (renamed, or never registered?)`);
  const asked = Object.keys(labels);
  if (asked.length === 0 && r.seen.length > 0) {
    throw new Error(`metric ${name} has labels (${[...new Set(r.seen)].join(' | ')}): name the series to read`);
  }
  if (asked.length > 0 && r.seen.length > 0 && !r.seen.some((key) => asked.every((l) => labelNames(key).includes(l)))) {
    throw new Error(`metric ${name} has no sample with the labels ${asked.join(', ')} (its samples carry: ${[...new Set(r.seen)].join(' | ') || 'no labels'})`);
  }
  return 0;
}

/** Like sample(), but 0 also when the metric is absent altogether: only for metrics that may legitimately not be registered. */
export function sampleOr0(text: string, name: string, labels: Record<string, string> = {}): number {
  return lookup(text, name, labels).value ?? 0;
}

/** Polls `fn` until `ok(value)` or the timeout passes (then throws with the last value). */
export async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  return waitForValue(fn, ok, { timeoutMs, intervalMs: 50 });
}
