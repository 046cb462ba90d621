import { clamp, Random, STREAMS } from '../random.js';
import { MAX_EPISODES_PER_DEVICE, type AnomalyEpisode, type HeartRateReading, type ReadingModel } from '../readings.js';

/**
 * Heart rate of one athlete: a first-order response towards a target that follows training
 * phases (rest ~60 bpm -> effort 140-185 bpm -> recovery decaying back to rest), plus a slow
 * drift and beat-to-beat noise. The RR interval is 60000 / bpm with a little variability.
 * Rare anomalies: a spike above 200 bpm for 1-3 s, or a flatline at 0 (no RR) for 2-5 s.
 */
export interface HeartRateModelOptions {
  readonly seed: number;
  /** Index of the device (0-based): each athlete gets its own physiology and random stream. */
  readonly deviceIndex: number;
  /** Event time of the first reading, ms since the epoch. */
  readonly startTs: number;
  /** Readings per second (default 5). */
  readonly rateHz?: number;
  /** Probability that a reading starts an anomaly episode (default 0.0005). */
  readonly anomalyProbability?: number;
}

export type HeartRatePhase = 'rest' | 'effort' | 'recovery';
export type HeartRateAnomaly = 'spike' | 'flatline';

/** Normal (non-anomalous) readings stay within these bounds; anomalies are 0 or above 200. */
export const HEART_RATE_NORMAL_RANGE = { min: 35, max: 195 } as const;
export const HEART_RATE_SPIKE_RANGE = { min: 205, max: 235 } as const;
export const DEFAULT_HEART_RATE_HZ = 5;
export const DEFAULT_ANOMALY_PROBABILITY = 0.0005;

export class HeartRateModel implements ReadingModel<HeartRateReading> {
  private readonly rng: Random;
  private readonly intervalMs: number;
  private readonly dt: number;
  private readonly anomalyProbability: number;
  private readonly restBpm: number;
  private readonly maxEffortBpm: number;
  private seq = 0;
  private hr: number;
  private drift = 0;
  private phaseName: HeartRatePhase = 'rest';
  private phaseLeftS: number;
  private target: number;
  private tauS = 30;
  private anomalyKind: HeartRateAnomaly | null = null;
  private anomalyLeftS = 0;
  private spikeBpm = 0;
  /** Anomaly episodes started so far. */
  anomalyEpisodes = 0;
  /** Where and when they were (event time of their first and last reading). */
  readonly episodes: AnomalyEpisode[] = [];
  episodesDropped = 0;

  constructor(private readonly options: HeartRateModelOptions) {
    const rate = options.rateHz ?? DEFAULT_HEART_RATE_HZ;
    if (!(rate > 0)) throw new RangeError(`rateHz must be > 0, got ${rate}`);
    this.intervalMs = 1000 / rate;
    this.dt = 1 / rate;
    this.anomalyProbability = options.anomalyProbability ?? DEFAULT_ANOMALY_PROBABILITY;
    this.rng = new Random(options.seed, options.deviceIndex, STREAMS.model);
    this.restBpm = clamp(this.rng.normal(60, 4), 48, 72);
    this.maxEffortBpm = this.rng.uniform(170, 185);
    this.hr = this.restBpm;
    this.target = this.restBpm;
    // Athletes start at different points of their rest phase, so they do not move in lockstep.
    this.phaseLeftS = this.rng.uniform(5, 60);
  }

  /** Phase of the last reading (for tests and diagnostics). */
  get phase(): HeartRatePhase {
    return this.phaseName;
  }

  /** Anomaly of the last reading, or null. */
  get anomaly(): HeartRateAnomaly | null {
    return this.anomalyKind;
  }

  next(): HeartRateReading {
    const seq = ++this.seq;
    const ts = this.options.startTs + Math.round((seq - 1) * this.intervalMs);
    this.advancePhysiology();

    if (this.anomalyKind !== null) {
      this.anomalyLeftS -= this.dt;
      if (this.anomalyLeftS <= 0) this.anomalyKind = null;
    }
    if (this.anomalyKind === null && this.rng.chance(this.anomalyProbability)) {
      this.anomalyEpisodes++;
      if (this.rng.chance(0.5)) {
        this.anomalyKind = 'spike';
        this.anomalyLeftS = this.rng.uniform(1, 3);
        this.spikeBpm = this.rng.uniform(HEART_RATE_SPIKE_RANGE.min + 3, HEART_RATE_SPIKE_RANGE.max - 3);
      } else {
        this.anomalyKind = 'flatline';
        this.anomalyLeftS = this.rng.uniform(2, 5);
      }
    }

    if (this.anomalyKind !== null) this.noteAnomaly(this.anomalyKind, ts, seq);
    let bpm: number;
    if (this.anomalyKind === 'flatline') return { seq, ts, bpm: 0 };
    if (this.anomalyKind === 'spike') {
      bpm = Math.round(clamp(this.spikeBpm + this.rng.normal(0, 1.5), HEART_RATE_SPIKE_RANGE.min, HEART_RATE_SPIKE_RANGE.max));
    } else {
      bpm = Math.round(clamp(this.hr + this.drift + this.rng.normal(0, 1.2), HEART_RATE_NORMAL_RANGE.min, HEART_RATE_NORMAL_RANGE.max));
    }
    const rrMs = Math.round(clamp((60_000 / bpm) * (1 + this.rng.normal(0, 0.015)), 100, 5000));
    return { seq, ts, bpm, rrMs };
  }

  private currentEpisodeSeq = -1;
  private noteAnomaly(kind: HeartRateAnomaly, ts: number, seq: number): void {
    const last = this.episodes[this.episodes.length - 1];
    if (last !== undefined && this.currentEpisodeSeq === seq - 1 && last.kind === kind && this.anomalyEpisodes === this.episodeCount) {
      last.endTs = ts;
      last.readings++;
    } else {
      if (this.episodes.length >= MAX_EPISODES_PER_DEVICE) {
        this.episodes.shift();
        this.episodesDropped++;
      }
      this.episodes.push({ kind, startTs: ts, endTs: ts, readings: 1 });
      this.episodeCount = this.anomalyEpisodes;
    }
    this.currentEpisodeSeq = seq;
  }
  private episodeCount = 0;

  private advancePhysiology(): void {
    this.phaseLeftS -= this.dt;
    if (this.phaseLeftS <= 0) this.enterNextPhase();
    // First-order response towards the target: fast rise under effort, slower recovery decay.
    this.hr += (this.target - this.hr) * (1 - Math.exp(-this.dt / this.tauS));
    // Slow drift (AR(1) with a time constant of ~20 s), scaled so it does not depend on the rate.
    const keep = Math.exp(-this.dt / 20);
    this.drift = this.drift * keep + this.rng.normal(0, 2.5 * Math.sqrt(1 - keep * keep));
  }

  private enterNextPhase(): void {
    const r = this.rng;
    switch (this.phaseName) {
      case 'rest':
        this.phaseName = 'effort';
        this.phaseLeftS = r.uniform(30, 180);
        this.target = r.uniform(140, this.maxEffortBpm);
        this.tauS = r.uniform(12, 25);
        break;
      case 'effort':
        this.phaseName = 'recovery';
        this.phaseLeftS = r.uniform(40, 120);
        this.target = this.restBpm + r.uniform(0, 8);
        this.tauS = r.uniform(30, 50);
        break;
      case 'recovery':
        this.phaseName = 'rest';
        this.phaseLeftS = r.uniform(20, 90);
        this.target = this.restBpm;
        this.tauS = 40;
        break;
    }
  }
}
