import { clamp, Random, STREAMS } from '../random.js';
import { MAX_EPISODES_PER_DEVICE, type AnomalyEpisode, type ReadingModel, type VehicleClass, type VehicleDetection } from '../readings.js';

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
  /**
   * Truck surges now and then (default false): extra trucks in one lane, 40-60 a minute for 2-4
   * minutes, enough for the default alert rule bridge-truck-surge (more than 25 a minute). Drawn
   * from their own random stream, so the other vehicles are the same with or without them.
   */
  readonly truckSurges?: boolean;
  /** Mean event time between the end of one surge and the start of the next, s (default 600). */
  readonly truckSurgeEveryS?: number;
}

export const DEFAULT_TRUCK_SURGE_EVERY_S = 600;
/** Extra trucks per minute during a surge, and how long a surge lasts (s). */
export const TRUCK_SURGE_PER_MINUTE = { min: 40, max: 60 } as const;
export const TRUCK_SURGE_DURATION_S = { min: 120, max: 240 } as const;

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
  /** The next regular detection (without its seq), drawn ahead when surges are on. */
  private pending: Omit<VehicleDetection, 'seq'> | null = null;
  private readonly surgeRng: Random | null;
  private readonly surgeEveryS: number;
  private surge: { lane: number; endTs: number; ratePerS: number; nextT: number; episode: AnomalyEpisode } | null = null;
  private nextSurgeT = Number.POSITIVE_INFINITY;
  /** Truck surges so far (event time of their first and last extra truck). */
  readonly episodes: AnomalyEpisode[] = [];
  episodesDropped = 0;

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
    this.surgeEveryS = options.truckSurgeEveryS ?? DEFAULT_TRUCK_SURGE_EVERY_S;
    if (!(this.surgeEveryS > 0)) throw new RangeError(`truckSurgeEveryS must be > 0, got ${this.surgeEveryS}`);
    this.surgeRng = options.truckSurges === true ? new Random(options.seed, options.deviceIndex, STREAMS.surge) : null;
    if (this.surgeRng !== null) this.nextSurgeT = options.startTs + this.surgeRng.exponential(1 / this.surgeEveryS) * 1000;
  }

  /** Arrival rate (vehicles/s) at event time ts. */
  rateAt(ts: number): number {
    return this.rushHour ? this.rate * trafficFactor(ts, this.utcOffsetMinutes) : this.rate;
  }

  next(): VehicleDetection {
    if (this.surgeRng === null) return { seq: ++this.seq, ...this.regular() };
    this.pending ??= this.regular();
    const extra = this.surgeTruckBefore(this.pending.ts);
    if (extra !== null) return { seq: ++this.seq, ...extra };
    const d = this.pending;
    this.pending = null;
    return { seq: ++this.seq, ...d };
  }

  /** The surge's next extra truck if it comes before `ts` (starting and ending surges on the way). */
  private surgeTruckBefore(ts: number): Omit<VehicleDetection, 'seq'> | null {
    const r = this.surgeRng!;
    for (;;) {
      if (this.surge === null) {
        if (this.nextSurgeT >= ts) return null;
        const lane = r.int(1, this.lanes);
        const start = this.nextSurgeT;
        const endTs = start + r.uniform(TRUCK_SURGE_DURATION_S.min, TRUCK_SURGE_DURATION_S.max) * 1000;
        const ratePerS = r.uniform(TRUCK_SURGE_PER_MINUTE.min, TRUCK_SURGE_PER_MINUTE.max) / 60;
        this.surge = { lane, endTs, ratePerS, nextT: start + r.exponential(ratePerS) * 1000, episode: { kind: 'truck-surge', lane, startTs: Number.NaN, endTs: Number.NaN, readings: 0 } };
      }
      const s = this.surge;
      if (s.nextT >= s.endTs) {
        this.surge = null;
        this.nextSurgeT = s.endTs + r.exponential(1 / this.surgeEveryS) * 1000;
        continue;
      }
      // Same millisecond as a regular detection: the regular one goes first.
      if (Math.floor(s.nextT) >= ts) return null;
      const at = Math.floor(s.nextT);
      s.nextT += r.exponential(s.ratePerS) * 1000;
      if (s.episode.readings === 0) this.recordEpisode({ ...s.episode, startTs: at, endTs: at, readings: 0 });
      const episode = this.episodes[this.episodes.length - 1]!;
      episode.endTs = at;
      episode.readings++;
      s.episode.readings++;
      const traits = TRAITS.TRUCK;
      const axles = r.weighted(traits.axles);
      const detection: { -readonly [K in keyof Omit<VehicleDetection, 'seq'>]: VehicleDetection[K] } = {
        ts: at,
        lane: s.lane,
        vehicleClass: 'TRUCK',
        speedKmh: Math.round(clamp(r.normal(traits.speed[0] - 10, traits.speed[1]), 5, 180) * 10) / 10,
        axles,
      };
      if (r.chance(this.weightProbability)) {
        const mean = traits.weight[0] + traits.weight[1] * axles;
        detection.weightKg = Math.round(clamp(r.normal(mean, mean * traits.weight[2]), 80, 60_000) / 10) * 10;
      }
      return detection;
    }
  }

  private recordEpisode(e: AnomalyEpisode): void {
    if (this.episodes.length >= MAX_EPISODES_PER_DEVICE) {
      this.episodes.shift();
      this.episodesDropped++;
    }
    this.episodes.push(e);
  }

  /** The next detection of the regular traffic (without its seq). */
  private regular(): Omit<VehicleDetection, 'seq'> {
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
    const detection: { -readonly [K in keyof Omit<VehicleDetection, 'seq'>]: VehicleDetection[K] } = {
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
