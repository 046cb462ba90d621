import { DEFAULT_ANOMALY_PROBABILITY, DEFAULT_HEART_RATE_HZ } from './models/heart-rate-model.js';
import { DEFAULT_BRIDGE_RATE, DEFAULT_LANES, DEFAULT_TRUCK_SURGE_EVERY_S, DEFAULT_WEIGHT_PROBABILITY } from './models/bridge-model.js';
import { PAYLOAD_FORMATS, type PayloadFormat } from './payload-encoder.js';
import { randomSeed } from './random.js';
import { SENSOR_KINDS, type SensorKind } from './readings.js';

/** Progress of a run, reported every `progressIntervalMs` and once at the end. */
export interface SimulatorProgress {
  readonly elapsedMs: number;
  /** Readings handed to the MQTT client (injected duplicates included). */
  readonly readingsSent: number;
  /** Unique readings acknowledged (QoS 1: PUBACK; QoS 0: written to the socket). */
  readonly readingsAcked: number;
  readonly readingsFailed: number;
  readonly publishesSent: number;
  readonly publishesAcked: number;
  readonly inFlight: number;
  /** Unique readings acknowledged per second since the previous report. */
  readonly ratePerSecond: number;
  readonly done: boolean;
}

export interface SimulatorOptions {
  readonly kind: SensorKind;
  /** Benchmark defaults: many devices, several connections, no wall-clock pacing, pre-encoding. */
  readonly load?: boolean;
  /** Number of devices (default 5 athletes, 3 bridges; 100 with `load`). */
  readonly devices?: number;
  /** Per device: readings/s for heart rate (default 5), mean vehicles/s at midday traffic for bridges (default 1). */
  readonly rate?: number;
  /** Readings/s over all devices: paces sending; the per-device rate defaults to totalRate / devices. */
  readonly totalRate?: number;
  /** Event-time span per device in seconds (readings with ts < startTs + duration). */
  readonly durationS?: number;
  /** Readings per device. With neither count nor duration the run lasts until aborted. */
  readonly count?: number;
  readonly qos?: 0 | 1;
  readonly format?: PayloadFormat;
  /** Readings per publish; above 1 the batch message (protobuf) or a JSON array is used. */
  readonly batch?: number;
  /** Same seed (and startTs) = same readings. Random when omitted (recorded in the summary). */
  readonly seed?: number;
  /** Event time of the first readings, ms since the epoch (default: now). */
  readonly startTs?: number;
  readonly url?: string;
  readonly username?: string;
  /** With perDeviceCredentials, "{device}" in the password is replaced by the device id. */
  readonly password?: string;
  /** One connection per device, username = device id (what an authenticating gateway requires). */
  readonly perDeviceCredentials?: boolean;
  /** Device ids are `<prefix><n>`, n from 1 (default "athlete-", "bridge-", "load-hr-"/"load-br-"). */
  readonly prefix?: string;
  /** Probability to hold a reading back behind the next 1-3 readings. */
  readonly outOfOrder?: number;
  /** Probability to send a reading a second time (same seq). */
  readonly duplicates?: number;
  /** Pace by wall clock: a reading is sent when its event time has come (default true, false with `load`). */
  readonly realtime?: boolean;
  /** MQTT connections the devices are spread over (default 1, 4 with `load`). */
  readonly connections?: number;
  /** Publishes in flight per connection (default 256 at QoS 1, 1024 at QoS 0). */
  readonly inflight?: number;
  /** Generate and encode up to this many readings before the clock starts (default 0; 2,000,000 with `load`). */
  readonly preEncode?: number;
  /** Heart rate: probability that a reading starts an anomaly episode (default 0.0005). */
  readonly anomalyProbability?: number;
  /** Bridges: lanes (default 4). */
  readonly lanes?: number;
  /** Bridges: probability that a detection carries weightKg (default 0.5). */
  readonly weightProbability?: number;
  /** Bridges: local time offset from UTC in minutes, for the rush-hour profile (default 0). */
  readonly utcOffsetMinutes?: number;
  /** Bridges: follow the daily traffic profile (default true; false with `load`). */
  readonly rushHour?: boolean;
  /** Bridges: truck surges now and then in one lane (default false; on in the demo). */
  readonly truckSurges?: boolean;
  /** Bridges: mean event time between truck surges, s (default 600). */
  readonly truckSurgeEveryS?: number;
  /** Where to write the summary JSON. */
  readonly summaryFile?: string;
  /** Stops the run: unsent readings are dropped, in-flight ones get `drainTimeoutMs` to be acknowledged. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: SimulatorProgress) => void;
  /** Default 1000. */
  readonly progressIntervalMs?: number;
  /** Non-fatal problems (lost connection, failed publish). */
  readonly onWarning?: (message: string) => void;
  /** How long to wait for outstanding acknowledgements at the end (default 15000). */
  readonly drainTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly clientIdPrefix?: string;
}

export interface ResolvedOptions {
  readonly kind: SensorKind;
  readonly load: boolean;
  readonly devices: number;
  readonly rate: number;
  readonly totalRate: number | null;
  readonly durationS: number | null;
  readonly count: number | null;
  readonly qos: 0 | 1;
  readonly format: PayloadFormat;
  readonly batch: number;
  readonly seed: number;
  readonly startTs: number;
  readonly url: string;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly perDeviceCredentials: boolean;
  readonly prefix: string;
  readonly outOfOrder: number;
  readonly duplicates: number;
  readonly realtime: boolean;
  readonly connections: number;
  readonly inflight: number;
  readonly preEncode: number;
  readonly anomalyProbability: number;
  readonly lanes: number;
  readonly weightProbability: number;
  readonly utcOffsetMinutes: number;
  readonly rushHour: boolean;
  readonly truckSurges: boolean;
  readonly truckSurgeEveryS: number;
  readonly summaryFile: string | undefined;
  readonly progressIntervalMs: number;
  readonly drainTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly clientIdPrefix: string;
}

/** A bad option value; the message names the option. */
export class SimulatorOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimulatorOptionError';
  }
}

export const DEFAULT_URL = 'mqtt://127.0.0.1:1883';
const DEVICE_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

function check(cond: boolean, message: string): void {
  if (!cond) throw new SimulatorOptionError(message);
}

const isInt = (n: number, min: number, max = Number.MAX_SAFE_INTEGER): boolean => Number.isSafeInteger(n) && n >= min && n <= max;
const isProb = (n: number): boolean => Number.isFinite(n) && n >= 0 && n <= 1;

export function defaultPrefix(kind: SensorKind, load: boolean): string {
  if (load) return kind === 'heart-rate' ? 'load-hr-' : 'load-br-';
  return kind === 'heart-rate' ? 'athlete-' : 'bridge-';
}

export function deviceId(options: Pick<ResolvedOptions, 'prefix'>, index: number): string {
  return `${options.prefix}${index + 1}`;
}

/** Fills in defaults and validates; throws SimulatorOptionError naming the bad option. */
export function resolveOptions(o: SimulatorOptions, now = Date.now()): ResolvedOptions {
  check((SENSOR_KINDS as readonly string[]).includes(o.kind), `kind must be one of ${SENSOR_KINDS.join('|')}, got ${String(o.kind)}`);
  const load = o.load ?? false;
  const devices = o.devices ?? (load ? 100 : o.kind === 'heart-rate' ? 5 : 3);
  check(isInt(devices, 1, 1_000_000), `--devices must be an integer >= 1, got ${devices}`);
  const totalRate = o.totalRate ?? null;
  check(totalRate === null || (Number.isFinite(totalRate) && totalRate > 0), `--total-rate must be > 0, got ${totalRate}`);
  const defaultRate = o.kind === 'heart-rate' ? DEFAULT_HEART_RATE_HZ : DEFAULT_BRIDGE_RATE;
  const rate = o.rate ?? (totalRate !== null ? totalRate / devices : defaultRate);
  check(Number.isFinite(rate) && rate > 0 && rate <= 100_000, `--rate must be > 0 (and at most 100000), got ${rate}`);
  const durationS = o.durationS ?? null;
  check(durationS === null || (Number.isFinite(durationS) && durationS > 0), `--duration must be > 0 seconds, got ${durationS}`);
  const count = o.count ?? null;
  check(count === null || isInt(count, 1), `--count must be an integer >= 1, got ${count}`);
  const qos = o.qos ?? 1;
  check(qos === 0 || qos === 1, `--qos must be 0 or 1, got ${String(qos)}`);
  const format = o.format ?? 'protobuf';
  check((PAYLOAD_FORMATS as readonly string[]).includes(format), `--format must be protobuf or json, got ${String(format)}`);
  const batch = o.batch ?? 1;
  check(isInt(batch, 1, 100_000), `--batch must be an integer >= 1, got ${batch}`);
  const seed = o.seed ?? randomSeed();
  check(isInt(seed, 0), `--seed must be a non-negative integer, got ${seed}`);
  const startTs = o.startTs ?? now;
  check(isInt(startTs, 0), `--start-ts must be ms since the epoch (a non-negative integer), got ${startTs}`);
  const url = o.url ?? DEFAULT_URL;
  check(/^(mqtts?|wss?|tcp|ssl):\/\/./.test(url), `--url must be an mqtt://, mqtts://, ws:// or wss:// URL, got ${url}`);
  const prefix = o.prefix ?? defaultPrefix(o.kind, load);
  check(DEVICE_ID.test(`${prefix}${devices}`), `--prefix: device ids must be 1-128 characters of [A-Za-z0-9_.:-], got "${prefix}1"`);
  const outOfOrder = o.outOfOrder ?? 0;
  check(isProb(outOfOrder), `--out-of-order must be a probability in [0, 1], got ${outOfOrder}`);
  const duplicates = o.duplicates ?? 0;
  check(isProb(duplicates), `--duplicates must be a probability in [0, 1], got ${duplicates}`);
  const perDeviceCredentials = o.perDeviceCredentials ?? false;
  check(!(perDeviceCredentials && o.username !== undefined), '--username cannot be combined with --per-device-credentials (the username is the device id)');
  const connections = perDeviceCredentials ? devices : Math.min(devices, o.connections ?? (load ? 4 : 1));
  check(isInt(connections, 1, 100_000), `--connections must be an integer >= 1, got ${o.connections}`);
  const inflight = o.inflight ?? (qos === 1 ? 256 : 1024);
  check(isInt(inflight, 1, 65_000), `--inflight must be an integer in [1, 65000], got ${inflight}`);
  const preEncode = o.preEncode ?? (load ? 2_000_000 : 0);
  check(isInt(preEncode, 0), `preEncode must be an integer >= 0, got ${preEncode}`);
  const anomalyProbability = o.anomalyProbability ?? DEFAULT_ANOMALY_PROBABILITY;
  check(isProb(anomalyProbability), `--anomaly-prob must be a probability in [0, 1], got ${anomalyProbability}`);
  const lanes = o.lanes ?? DEFAULT_LANES;
  check(isInt(lanes, 1, 16), `--lanes must be an integer in [1, 16], got ${lanes}`);
  const weightProbability = o.weightProbability ?? DEFAULT_WEIGHT_PROBABILITY;
  check(isProb(weightProbability), `--weight-prob must be a probability in [0, 1], got ${weightProbability}`);
  const utcOffsetMinutes = o.utcOffsetMinutes ?? 0;
  const truckSurgeEveryS = o.truckSurgeEveryS ?? DEFAULT_TRUCK_SURGE_EVERY_S;
  check(Number.isFinite(truckSurgeEveryS) && truckSurgeEveryS > 0, `--truck-surge-every must be a number of seconds > 0, got ${truckSurgeEveryS}`);
  check(isInt(Math.abs(utcOffsetMinutes), 0, 24 * 60), `--utc-offset must be minutes in [-1440, 1440], got ${utcOffsetMinutes}`);
  const progressIntervalMs = o.progressIntervalMs ?? 1000;
  check(Number.isFinite(progressIntervalMs) && progressIntervalMs >= 10, `progressIntervalMs must be >= 10, got ${progressIntervalMs}`);
  const drainTimeoutMs = o.drainTimeoutMs ?? 15_000;
  check(Number.isFinite(drainTimeoutMs) && drainTimeoutMs >= 0, `drainTimeoutMs must be >= 0, got ${drainTimeoutMs}`);
  const connectTimeoutMs = o.connectTimeoutMs ?? 10_000;
  check(Number.isFinite(connectTimeoutMs) && connectTimeoutMs > 0, `connectTimeoutMs must be > 0, got ${connectTimeoutMs}`);
  return {
    kind: o.kind,
    load,
    devices,
    rate,
    totalRate,
    durationS,
    count,
    qos,
    format,
    batch,
    seed,
    startTs,
    url,
    username: o.username,
    password: o.password,
    perDeviceCredentials,
    prefix,
    outOfOrder,
    duplicates,
    realtime: o.realtime ?? !load,
    connections,
    inflight,
    preEncode,
    anomalyProbability,
    lanes,
    weightProbability,
    utcOffsetMinutes,
    // Under load the total rate paces sending; a constant arrival rate keeps event time in step with it.
    rushHour: o.rushHour ?? !load,
    truckSurges: o.truckSurges ?? false,
    truckSurgeEveryS,
    summaryFile: o.summaryFile,
    progressIntervalMs,
    drainTimeoutMs,
    connectTimeoutMs,
    clientIdPrefix: o.clientIdPrefix ?? 'pulsegate-sim',
  };
}
