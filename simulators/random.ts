/**
 * Seeded pseudo-random numbers (sfc32), so that the same seed always yields the same readings.
 * Every device draws from its own streams, derived from (seed, device index, stream id): a
 * device's readings do not depend on how many other devices run or on publish interleaving.
 */

function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Splits a non-negative safe integer into two 32-bit words. */
function words(n: number): [number, number] {
  const v = Math.abs(Math.trunc(n));
  return [v >>> 0, Math.floor(v / 0x1_0000_0000) >>> 0];
}

export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** `keys`: integers (e.g. seed, device index, stream id); any change gives an unrelated stream. */
  constructor(...keys: number[]) {
    let h = 0x9e3779b9;
    for (const k of keys) {
      const [lo, hi] = words(k);
      h = mix32(h ^ mix32(lo + 0x6d2b79f5));
      h = mix32(h ^ mix32(hi + 0x1b873593));
    }
    this.a = mix32(h ^ 0x85ebca6b);
    this.b = mix32(h ^ 0xc2b2ae35);
    this.c = mix32(h ^ 0x27d4eb2f);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.uint32();
  }

  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.uint32() / 0x1_0000_0000;
  }

  /** Uniform in [min, max). */
  uniform(min: number, max: number): number {
    return min + (max - min) * this.float();
  }

  /** Uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  /** Normal distribution (Box-Muller). */
  normal(mean = 0, sd = 1): number {
    let u = this.float();
    while (u === 0) u = this.float();
    const v = this.float();
    return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Exponential distribution with the given rate (mean 1/rate). */
  exponential(rate: number): number {
    let u = this.float();
    while (u === 0) u = this.float();
    return -Math.log(u) / rate;
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string | number>(weights: readonly (readonly [K, number])[]): K {
    let total = 0;
    for (const [, w] of weights) total += w;
    let x = this.float() * total;
    for (const [k, w] of weights) {
      x -= w;
      if (x < 0) return k;
    }
    return weights[weights.length - 1]![0];
  }
}

/** Stream ids, so that each use of randomness of a device has its own sequence. */
export const STREAMS = { model: 1, perturb: 2, profile: 3, surge: 4 } as const;

export function clamp(v: number, min: number, max: number): number {
  return v < min ? min : v > max ? max : v;
}

/** A random seed for runs without --seed (recorded in the summary so a run can be repeated). */
export function randomSeed(): number {
  return Math.floor(Math.random() * 0x7fff_ffff) + 1;
}
