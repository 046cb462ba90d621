/** Readings as the simulators produce them, in the JSON (camelCase) spelling of proto/pulsegate.proto. */

export const SENSOR_KINDS = ['heart-rate', 'bridge'] as const;
export type SensorKind = (typeof SENSOR_KINDS)[number];

/** Same order as enum VehicleClass in proto/pulsegate.proto (index = protobuf enum value). */
export { VEHICLE_CLASSES, type VehicleClass } from '../gateway/kinds/bridge.js';
import type { VehicleClass } from '../gateway/kinds/bridge.js';

export interface HeartRateReading {
  /** Per-device sequence number, 1, 2, 3, ... */
  readonly seq: number;
  /** Event time, ms since the Unix epoch (UTC). */
  readonly ts: number;
  readonly bpm: number;
  /** RR interval in ms; absent while the signal is flat (bpm 0). */
  readonly rrMs?: number;
}

export interface VehicleDetection {
  readonly seq: number;
  readonly ts: number;
  /** 1-based lane number. */
  readonly lane: number;
  readonly vehicleClass: VehicleClass;
  readonly speedKmh: number;
  readonly axles: number;
  /** Weigh-in-motion result, when the bridge has it. */
  readonly weightKg?: number;
}

export type SimReading = HeartRateReading | VehicleDetection;

/**
 * An anomaly a model injected: heart-rate `spike` (above 200 bpm) or `flatline` (bpm 0), a bridge
 * `truck-surge` (extra trucks in one lane). `startTs`/`endTs`: event time of its first and last
 * reading (for a surge, of its first and last extra truck).
 */
export interface AnomalyEpisode {
  readonly kind: 'spike' | 'flatline' | 'truck-surge';
  readonly startTs: number;
  endTs: number;
  /** Readings of the episode (extra trucks for a surge). */
  readings: number;
  /** Surges: the lane. */
  readonly lane?: number;
}

/** Episodes kept per device; past it the oldest is dropped (counted in the summary). */
export const MAX_EPISODES_PER_DEVICE = 10_000;

/** A model: an endless, deterministic source of one device's readings, in event-time order. */
export interface ReadingModel<R extends SimReading = SimReading> {
  next(): R;
  /** The anomalies it injected so far, oldest first (bounded by MAX_EPISODES_PER_DEVICE). */
  readonly episodes?: readonly AnomalyEpisode[];
  /** Episodes dropped past the bound. */
  readonly episodesDropped?: number;
}

export function topicFor(kind: SensorKind, deviceId: string): string {
  return `sensors/${kind}/${deviceId}`;
}
