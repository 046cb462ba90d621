import { Counter, type Registry } from 'prom-client';
import { restoreStages, snapshotStages, type StagesState, type StatefulStage } from '../checkpoint/stateful-stage.js';
import type { Clock } from '../clock.js';
import type { EventBus } from '../events.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { DeviceStatus } from '../log/device-status-record.js';
import type { WindowEngine } from '../window/types.js';
import type { DeviceStats } from './device-stats.js';
import type { SequenceTracker } from './sequence-tracker.js';

/** Devices whose dedup key is kept made (beyond, the keys are made again, as on first sight). */
const KEY_CACHE_MAX = 100_000;

/** Where duplicates are counted (the ingest metrics). */
export interface DuplicateCounter {
  duplicate(n: number): void;
}

/**
 * What runs on every durable ingest record, live and in replay alike: dedup by (device, seq),
 * then windows. It is synchronous and deterministic: the same records from the same checkpoint
 * give the same state and the same events. What it does is told on the event bus:
 * `reading.durable` (the readings that passed dedup), `reading.late`, `window.emitted`.
 */
export interface ReadingPipelineOptions {
  readonly kinds: KindRegistry;
  readonly tracker: SequenceTracker;
  readonly windows: WindowEngine;
  readonly events: EventBus;
  readonly metrics: DuplicateCounter;
  readonly registry: Registry;
  /** Arrival time of each publish (idle detection), read once for all its readings. */
  readonly clock: Clock;
  /** Stages downstream of the windows whose state the same checkpoint keeps (the alert engine). */
  readonly moreStages?: readonly StatefulStage[];
  /** Per-device counts (GET /v1/devices); absent = none kept. */
  readonly devices?: DeviceStats;
}

/** A checkpoint of the pipeline: every stage's state, covering the records below `offset`. */
export interface PipelineCheckpoint {
  readonly offset: number;
  readonly data: StagesState;
}

export class ReadingPipeline {
  /** The stateful stages, in the order they are restored. */
  readonly stages: readonly StatefulStage[];
  private upTo = 0;
  /** The record being processed (its events carry it); the last processed one between records. */
  private offset = -1;
  private replay = false;
  private readonly gaps: Counter;
  private readonly gapFills: Counter;
  private readonly resets: Counter;
  private readonly late: Counter;
  private readonly windowsEmitted: Counter<'kind'>;
  private lastStats = { gaps: 0, gapFills: 0, resets: 0 };
  /**
   * A device's dedup key (kind NUL deviceId), made once: the same string every publish, so the
   * sequence tracker's and the device table's maps find it by its cached hash instead of
   * flattening and hashing a new concatenation each time. Cleared past KEY_CACHE_MAX devices.
   */
  private readonly keys = new Map<string, Map<string, string>>();
  private keyCount = 0;

  constructor(private readonly options: ReadingPipelineOptions) {
    this.stages = [options.tracker, options.windows, ...(options.moreStages ?? [])];
    const registers = [options.registry];
    this.gaps = new Counter({ name: 'pulsegate_sequence_gaps_total', help: 'Sequence numbers skipped by devices (loss in transit; see gap fills)', registers });
    this.gapFills = new Counter({ name: 'pulsegate_sequence_gap_fills_total', help: 'Skipped sequence numbers that arrived later, out of order (net loss = gaps - fills)', registers });
    this.resets = new Counter({ name: 'pulsegate_sequence_resets_total', help: 'Device sequence counters that restarted', registers });
    this.late = new Counter({ name: 'pulsegate_late_readings_dropped_total', help: 'Readings later than allowed lateness, kept as dead letters', registers });
    this.windowsEmitted = new Counter({ name: 'pulsegate_windows_emitted_total', help: 'Windows emitted (first emissions and corrections)', labelNames: ['kind'], registers });
    for (const k of options.kinds.keys()) this.windowsEmitted.labels(k).inc(0);
    this.gaps.inc(0);
    const { events } = options;
    options.windows.onEmit((window) => {
      this.windowsEmitted.labels(window.kind).inc();
      events.emit('window.emitted', { window, offset: this.offset, replay: this.replay });
    });
    options.windows.onLate((reading, sizeMs) => {
      this.late.inc();
      events.emit('reading.late', { reading, sizeMs, offset: this.offset, replay: this.replay });
    });
  }

  /** Every ingest record with an offset below this has been processed. */
  get processedUpTo(): number {
    return this.upTo;
  }

  /**
   * `receivedAt`: when ingest received the publish, from its ingest record; it bounds the
   * windows' watermark, so live and replay must pass the same value. Defaults to the clock.
   * `replay`: the record comes from recovery, not from ingest (told to listeners).
   * `topic`, `payload`: the publish the readings were decoded from, when they are all of its
   * readings (native topics); told with reading.durable if dedup dropped none of them.
   */
  process(readings: readonly Reading[], offset: number, receivedAt?: number, replay = false, topic: string | null = null, payload: Uint8Array | null = null): void {
    const { tracker, windows, metrics, events } = this.options;
    let duplicates = 0;
    let accepted: Reading[] | null = null;
    // The readings of one publish share kind and device (one topic): one dedup key for all.
    let key = '';
    let keyOf: Reading | null = null;
    const now = this.options.clock.now();
    const at = receivedAt ?? now;
    const seqStats = tracker.stats;
    const gaps0 = seqStats.gaps;
    const fills0 = seqStats.gapFills;
    this.offset = offset;
    this.replay = replay;
    try {
      for (let i = 0; i < readings.length; i++) {
        const r = readings[i]!;
        if (keyOf === null || r.deviceId !== keyOf.deviceId || r.kind !== keyOf.kind || r.seqStream !== keyOf.seqStream) {
          key = r.seqStream ?? this.deviceKey(r.kind, r.deviceId);
          keyOf = r;
        }
        // seq 0: a device without sequence numbers (deduplicated by content at ingest), no gap accounting.
        if (r.seq !== 0 && tracker.observe(key, r.seq) === 'duplicate') {
          // From the first duplicate on, the accepted readings are a copy.
          accepted ??= readings.slice(0, i);
          duplicates++;
          continue;
        }
        accepted?.push(r);
      }
      // Windows after dedup: the tracker's verdicts do not depend on them, and nothing is told
      // on the bus between the two, so the events come in the same order as reading by reading.
      windows.addMany(accepted ?? readings, now, at);
      if (duplicates > 0) metrics.duplicate(duplicates);
      const gaps = seqStats.gaps - gaps0;
      const gapFills = seqStats.gapFills - fills0;
      if (this.options.devices !== undefined && keyOf !== null) {
        const durable = accepted ?? readings;
        let newest: Reading | null = null;
        for (const r of durable) if (newest === null || r.ts >= newest.ts) newest = r;
        this.options.devices.record(
          key,
          keyOf.kind,
          keyOf.deviceId,
          { accepted: durable.length, duplicates, gaps, gapFills },
          newest,
          at,
        );
      }
      this.syncSeqStats();
      if (offset >= this.upTo) this.upTo = offset + 1;
      const durable = accepted ?? readings;
      if (durable.length > 0 && events.has('reading.durable')) {
        const whole = accepted === null ? payload : null;
        events.emit('reading.durable', { readings: durable, offset, receivedAt: at, replay, gaps, gapFills, topic: whole === null ? null : topic, payload: whole });
      }
    } finally {
      this.offset = this.upTo - 1;
      this.replay = false;
    }
  }

  /**
   * A durable deviceStatus record (a Sparkplug B birth or death), live or replayed: told on the
   * bus as `device.status`. It changes no stage's state; it counts as processed.
   */
  deviceStatus(status: DeviceStatus, offset: number, replay = false): void {
    if (offset >= this.upTo) this.upTo = offset + 1;
    this.offset = this.upTo - 1;
    this.options.events.emit('device.status', { ...status, offset, replay });
  }

  /** Every stage's state and the offset it covers, in one synchronous step. */
  checkpoint(): PipelineCheckpoint {
    return { offset: this.upTo, data: snapshotStages(this.stages) };
  }

  /**
   * Restores every stage from a checkpoint (either format: see restoreStages); the records from
   * its offset on are the ones still to process.
   */
  restore(checkpoint: { readonly offset: number; readonly data: unknown }): void {
    restoreStages(this.stages, checkpoint.data);
    this.upTo = checkpoint.offset;
    this.offset = checkpoint.offset - 1;
  }

  private deviceKey(kind: string, deviceId: string): string {
    let byDevice = this.keys.get(kind);
    if (byDevice === undefined) this.keys.set(kind, (byDevice = new Map()));
    let key = byDevice.get(deviceId);
    if (key === undefined) {
      if (this.keyCount >= KEY_CACHE_MAX) {
        for (const m of this.keys.values()) m.clear();
        this.keyCount = 0;
      }
      key = kind + '\u0000' + deviceId;
      byDevice.set(deviceId, key);
      this.keyCount++;
    }
    return key;
  }

  private syncSeqStats(): void {
    const s = this.options.tracker.stats;
    const last = this.lastStats;
    if (s.gaps !== last.gaps) this.gaps.inc(s.gaps - last.gaps);
    if (s.gapFills !== last.gapFills) this.gapFills.inc(s.gapFills - last.gapFills);
    if (s.resets !== last.resets) this.resets.inc(s.resets - last.resets);
    last.gaps = s.gaps;
    last.gapFills = s.gapFills;
    last.resets = s.resets;
  }
}
