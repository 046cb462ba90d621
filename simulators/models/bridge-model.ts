import { clamp, Random, STREAMS } from '../random.js';
import type { ReadingModel, VehicleClass, VehicleDetection } from '../readings.js';

/**
 * Vehicles crossing one bridge: a non-homogeneous Poisson process (by thinning) whose rate
 * follows a daily traffic profile of the event time (morning and evening rush hours, quiet
 * nights), a fixed class mix, lanes (heavy vehicles keep to the outer lanes), class-dependent
 * speeds slowed by congestion at rush hour, axles per class and an optional weigh-in-motion.
 */
export interface BridgeModelOptions {
  readonly seed: number;
  readonly deviceIndex: number;
  /** Event time from which arrivals start, ms since the epoch. */
  readonly startTs: number;
  /** Mean arrivals per second when the traffic profile is 1.0 (midday); default 1. */
  readonly ratePerSecond?: number;
  /** Number of lanes, 1-16 (default 4). */
  readonly lanes?: number;
  /** Probability that a detection carries a weight (default 0.5). */
  readonly weightProbability?: number;
  /** Offset of the bridge's local time from UTC, in minutes, for the traffic profile (default 0). */
  readonly utcOffsetMinutes?: number;
  /** Whether arrivals follow the daily profile (default true); false gives a constant rate. */
  readonly rushHour?: boolean;
}

/** Traffic relative to midday, at the middle of each local hour 0..23. */
export const TRAFFIC_PROFILE: readonly number[] = [
  0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.8, 1.8, 2.2, 1.4, 1.0, 1.0, 1.1, 1.1, 1.0, 1.2, 1.8, 2.3, 1.8, 1.1, 0.7, 0.5, 0.35, 0.25,
];
const PROFILE_MAX = Math.max(...TRAFFIC_PROFILE);

/** Share of each class among detections. */
export const CLASS_MIX: readonly (readonly [VehicleClass, number])[] = [
  ['CAR', 0.7],
  ['VAN', 0.12],
  ['TRUCK', 0.09],
  ['MOTORCYCLE', 0.05],
  ['BUS', 0.03],
  ['UNKNOWN', 0.01],
];

interface ClassTraits {
  readonly speed: readonly [mean: number, sd: number];
  readonly axles: readonly (readonly [number, number])[];
  /** Weight in kg: base + per axle, and relative sd. */
  readonly weight: readonly [base: number, perAxle: number, relSd: number];
  readonly heavy: boolean;
}

const TRAITS: Readonly<Record<VehicleClass, ClassTraits>> = {
  CAR: { speed: [82, 12], axles: [[2, 1]], weight: [1450, 0, 0.2], heavy: false },
  VAN: { speed: [76, 10], axles: [[2, 0.95], [3, 0.05]], weight: [2600, 0, 0.2], heavy: false },
  TRUCK: { speed: [70, 7], axles: [[2, 0.2], [3, 0.15], [4, 0.15], [5, 0.4], [6, 0.1]], weight: [4000, 5500, 0.25], heavy: true },
  BUS: { speed: [68, 7], axles: [[2, 0.8], [3, 0.2]], weight: [9000, 2500, 0.15], heavy: true },
  MOTORCYCLE: { speed: [88, 15], axles: [[2, 1]], weight: [240, 0, 0.2], heavy: false },
  UNKNOWN: { speed: [60, 20], axles: [[2, 0.6], [3, 0.2], [4, 0.2]], weight: [2500, 0, 0.6], heavy: false },
};

export const DEFAULT_BRIDGE_RATE = 1;
export const DEFAULT_LANES = 4;
export const DEFAULT_WEIGHT_PROBABILITY = 0.5;

/** Traffic profile factor at event time `ts` (linear between hour midpoints). */
export function trafficFactor(ts: number, utcOffsetMinutes = 0): number {
  const dayMs = 86_400_000;
  const local = (((ts + utcOffsetMinutes * 60_000) % dayMs) + dayMs) % dayMs;
  const h = local / 3_600_000 - 0.5;
  const i0 = Math.floor(h);
  const frac = h - i0;
  const a = TRAFFIC_PROFILE[(i0 + 24) % 24]!;
  const b = TRAFFIC_PROFILE[(i0 + 25) % 24]!;
  return a + (b - a) * frac;
}

export class BridgeModel implements ReadingModel<VehicleDetection> {
  private readonly rng: Random;
  private readonly rate: number;
  private readonly lanes: number;
  private readonly weightProbability: number;
  private readonly utcOffsetMinutes: number;
  private readonly rushHour: boolean;
  private seq = 0;
  /** Event time of the last candidate arrival, fractional ms. */
  private t: number;

  constructor(options: BridgeModelOptions) {
    this.rate = options.ratePerSecond ?? DEFAULT_BRIDGE_RATE;
    if (!(this.rate > 0)) throw new RangeError(`ratePerSecond must be > 0, got ${this.rate}`);
    this.lanes = options.lanes ?? DEFAULT_LANES;
    if (!Number.isInteger(this.lanes) || this.lanes < 1 || this.lanes > 16) throw new RangeError(`lanes must be 1-16, got ${this.lanes}`);
    this.weightProbability = options.weightProbability ?? DEFAULT_WEIGHT_PROBABILITY;
    this.utcOffsetMinutes = options.utcOffsetMinutes ?? 0;
    this.rushHour = options.rushHour ?? true;
    this.rng = new Random(options.seed, options.deviceIndex, STREAMS.model);
    this.t = options.startTs;
  }

  /** Arrival rate (vehicles/s) at event time ts. */
  rateAt(ts: number): number {
    return this.rushHour ? this.rate * trafficFactor(ts, this.utcOffsetMinutes) : this.rate;
  }

  next(): VehicleDetection {
    const r = this.rng;
    // Thinning (Lewis-Shedler): candidates at the peak rate, each kept with rate(t) / peak.
    const peak = this.rushHour ? this.rate * PROFILE_MAX : this.rate;
    let factor: number;
    for (;;) {
      this.t += r.exponential(peak) * 1000;
      factor = this.rushHour ? trafficFactor(this.t, this.utcOffsetMinutes) : 1;
      if (!this.rushHour || r.float() * PROFILE_MAX < factor) break;
    }
    const ts = Math.floor(this.t);
    const vehicleClass = r.weighted(CLASS_MIX);
    const traits = TRAITS[vehicleClass];
    const axles = r.weighted(traits.axles);
    const lane = this.pickLane(traits.heavy);
    // Congestion: above 1.2x midday traffic speeds drop, by up to ~40% at the peak.
    const congestion = 1 - 0.4 * clamp((factor - 1.2) / (PROFILE_MAX - 1.2), 0, 1);
    const laneBonus = traits.heavy ? 0 : (lane - 1) * 2;
    const speedKmh = Math.round(clamp(r.normal(traits.speed[0] + laneBonus, traits.speed[1]) * congestion, 5, 180) * 10) / 10;
    const detection: { -readonly [K in keyof VehicleDetection]: VehicleDetection[K] } = {
      seq: ++this.seq,
      ts,
      lane,
      vehicleClass,
      speedKmh,
      axles,
    };
    if (r.chance(this.weightProbability)) {
      const [base, perAxle, relSd] = traits.weight;
      const mean = base + perAxle * axles;
      detection.weightKg = Math.round(clamp(r.normal(mean, mean * relSd), 80, 60_000) / 10) * 10;
    }
    return detection;
  }

  /** Lane 1 is the outer (slow) lane: heavy vehicles mostly use it, others spread out. */
  private pickLane(heavy: boolean): number {
    if (this.lanes === 1) return 1;
    const weights: [number, number][] = [];
    for (let lane = 1; lane <= this.lanes; lane++) weights.push([lane, heavy ? 1 / (lane * lane) : 1]);
    return this.rng.weighted(weights);
  }
}
