/** Tiny `--name value` / `--flag` argument reader shared by the benchmark processes. */
export class Args {
  private readonly values = new Map<string, string>();
  private readonly flags = new Set<string>();

  constructor(argv: readonly string[]) {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (!a.startsWith('--')) continue;
      const eq = a.indexOf('=');
      if (eq > 0) {
        this.values.set(a.slice(2, eq), a.slice(eq + 1));
        continue;
      }
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        this.values.set(a.slice(2), next);
        i++;
      } else {
        this.flags.add(a.slice(2));
      }
    }
  }

  /** The options given that are not among `known` (names without the leading --). */
  unknown(known: readonly string[]): string[] {
    const k = new Set(known);
    return [...this.flags, ...this.values.keys()].filter((n) => !k.has(n));
  }

  has(name: string): boolean {
    return this.flags.has(name) || this.values.has(name);
  }

  str(name: string, fallback: string): string {
    return this.values.get(name) ?? fallback;
  }

  num(name: string, fallback: number): number {
    const v = this.values.get(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${name}: not a number: ${v}`);
    return n;
  }
}

/** mulberry32: a small seeded generator; the same keys always give the same stream. */
export function seededRandom(...keys: number[]): () => number {
  let h = 0x9e3779b9;
  for (const k of keys) h = Math.imul(h ^ (k >>> 0), 0x85ebca6b) ^ (h >>> 13);
  let a = h >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
