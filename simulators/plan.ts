import { BridgeModel } from './models/bridge-model.js';
import { HeartRateModel } from './models/heart-rate-model.js';
import { deviceId, type ResolvedOptions } from './options.js';
import { createPayloadEncoder, type PayloadEncoder } from './payload-encoder.js';
import { Perturber } from './perturb.js';
import { Random, STREAMS } from './random.js';
import { topicFor, type AnomalyEpisode, type ReadingModel, type SimReading } from './readings.js';

/**
 * Turns the device models into the ordered stream of publishes of a run, independent of MQTT:
 * readings of all devices are merged in event-time order (a heap keyed by (ts, device index)),
 * each device's readings pass its fault injector (out of order, duplicates) and are cut into
 * batches; a publish is due at the event time of the reading that completed it.
 */
export interface PlannedDevice {
  readonly index: number;
  readonly id: string;
  readonly topic: string;
  /** Index of the MQTT connection this device publishes on. */
  readonly connection: number;
}

export interface PublishItem {
  readonly device: PlannedDevice;
  readonly readings: readonly SimReading[];
  readonly payload: Buffer;
  /** Event time at which this publish is due (ms since the epoch). */
  readonly dueTs: number;
}

interface DeviceRun extends PlannedDevice {
  readonly model: ReadingModel;
  readonly perturber: Perturber<SimReading>;
  next: SimReading | null;
  generated: number;
  batch: SimReading[];
  lastTs: number;
}

/** Where planned publishes go (an array). */
export interface PublishSink {
  push(item: PublishItem): unknown;
}

export function createModel(options: ResolvedOptions, deviceIndex: number): ReadingModel {
  const base = { seed: options.seed, deviceIndex, startTs: options.startTs };
  if (options.kind === 'heart-rate') return new HeartRateModel({ ...base, rateHz: options.rate, anomalyProbability: options.anomalyProbability });
  return new BridgeModel({
    ...base,
    ratePerSecond: options.rate,
    lanes: options.lanes,
    weightProbability: options.weightProbability,
    utcOffsetMinutes: options.utcOffsetMinutes,
    rushHour: options.rushHour,
    truckSurges: options.truckSurges,
    truckSurgeEveryS: options.truckSurgeEveryS,
  });
}

export class PublishPlanner {
  private readonly heap: DeviceRun[] = [];
  private readonly runs: DeviceRun[] = [];
  private readonly encoder: PayloadEncoder;
  private readonly endTs: number;
  /** Readings taken from the models so far (before fault injection). */
  generated = 0;

  constructor(private readonly options: ResolvedOptions) {
    this.encoder = createPayloadEncoder(options.kind, options.format);
    this.endTs = options.durationS === null ? Number.POSITIVE_INFINITY : options.startTs + options.durationS * 1000;
    for (let i = 0; i < options.devices; i++) {
      const id = deviceId(options, i);
      const run: DeviceRun = {
        index: i,
        id,
        topic: topicFor(options.kind, id),
        connection: i % options.connections,
        model: createModel(options, i),
        perturber: new Perturber(new Random(options.seed, i, STREAMS.perturb), { outOfOrder: options.outOfOrder, duplicates: options.duplicates }),
        next: null,
        generated: 0,
        batch: [],
        lastTs: options.startTs,
      };
      this.runs.push(run);
      if (this.advance(run)) this.heapPush(run);
    }
  }

  get devices(): readonly PlannedDevice[] {
    return this.runs;
  }

  get done(): boolean {
    return this.heap.length === 0;
  }

  get outOfOrderInjected(): number {
    let n = 0;
    for (const r of this.runs) n += r.perturber.outOfOrderInjected;
    return n;
  }

  get duplicatesInjected(): number {
    let n = 0;
    for (const r of this.runs) n += r.perturber.duplicatesInjected;
    return n;
  }

  /** The anomalies every device's model injected so far, by device id (in device order). */
  anomalies(): { deviceId: string; episodes: readonly AnomalyEpisode[]; dropped: number }[] {
    return this.runs.map((r) => ({ deviceId: r.id, episodes: r.model.episodes ?? [], dropped: r.model.episodesDropped ?? 0 }));
  }

  /** Event time of the next reading, or undefined when every device is done. */
  peekTs(): number | undefined {
    return this.heap[0]?.next?.ts;
  }

  /** Takes the earliest pending reading; appends the publishes it completes to `out`. */
  step(out: PublishSink): void {
    const run = this.heap[0];
    if (run === undefined) return;
    const reading = run.next!;
    run.lastTs = reading.ts;
    if (this.advance(run)) this.siftDown(0);
    else this.heapPopTop();
    for (const e of run.perturber.push(reading)) this.add(run, e.reading, out);
    if (run.next === null) this.finishDevice(run, out);
  }

  /** Ends every device now: held and partly filled batches go out (used when a run is stopped). */
  finishAll(out: PublishSink): void {
    for (const run of this.runs) {
      if (run.next !== null) run.next = null;
      this.finishDevice(run, out);
    }
    this.heap.length = 0;
  }

  /** Every publish of the whole run, in order (finite runs only; for tests and tooling). */
  all(): PublishItem[] {
    if (this.options.count === null && this.options.durationS === null) throw new RangeError('an unbounded run has no complete plan');
    const out: PublishItem[] = [];
    while (!this.done) this.step(out);
    return out;
  }

  private finishDevice(run: DeviceRun, out: PublishSink): void {
    for (const e of run.perturber.flush()) this.add(run, e.reading, out);
    if (run.batch.length > 0) this.emit(run, out);
  }

  private add(run: DeviceRun, reading: SimReading, out: PublishSink): void {
    run.batch.push(reading);
    if (run.batch.length >= this.options.batch) this.emit(run, out);
  }

  private emit(run: DeviceRun, out: PublishSink): void {
    const readings = run.batch;
    run.batch = [];
    const payload = this.options.batch > 1 ? this.encoder.encodeBatch(readings) : this.encoder.encodeOne(readings[0]!);
    out.push({ device: run, readings, payload, dueTs: run.lastTs });
  }

  /** Draws the device's next reading if it is within the run's limits. */
  private advance(run: DeviceRun): boolean {
    if (this.options.count !== null && run.generated >= this.options.count) {
      run.next = null;
      return false;
    }
    const r = run.model.next();
    if (r.ts >= this.endTs) {
      run.next = null;
      return false;
    }
    run.next = r;
    run.generated++;
    this.generated++;
    return true;
  }

  private less(a: DeviceRun, b: DeviceRun): boolean {
    const ta = a.next!.ts;
    const tb = b.next!.ts;
    return ta < tb || (ta === tb && a.index < b.index);
  }

  private heapPush(run: DeviceRun): void {
    const h = this.heap;
    h.push(run);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private heapPopTop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    this.siftDown(0);
  }

  private siftDown(start: number): void {
    const h = this.heap;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
