import { Counter, type Registry } from 'prom-client';
import type { Clock } from '../clock.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { SequenceTracker } from './sequence-tracker.js';
/** Where duplicates are counted (the ingest metrics). */
export interface DuplicateCounter {
  duplicate(n: number): void;
}
import type { WindowEngine, WindowResult } from '../window/types.js';
import type { SinkBatcher } from '../sinks/sink-batcher.js';

/**
 * What runs on every durable ingest record, live and in replay alike: dedup by (device, seq),
 * windows, and raw readings to the sink batcher. It is synchronous and deterministic: the same
 * records from the same checkpoint give the same state and the same emitted windows.
 */
export interface ReadingPipelineOptions {
  readonly kinds: KindRegistry;
  readonly tracker: SequenceTracker;
  readonly windows: WindowEngine;
  readonly batcher: SinkBatcher;
  readonly metrics: DuplicateCounter;
  readonly registry: Registry;
  /** Arrival time of each publish (idle detection), read once for all its readings. */
  readonly clock: Clock;
  readonly writeRawReadings: boolean;
  /** Late readings beyond allowed lateness; dead-lettered by the caller on the live path only. */
  readonly onLate: (reading: Reading, sizeMs: number, replaying: boolean) => void;
  /** Emitted windows, for alert rules and live streams. */
  readonly onWindow?: (w: WindowResult) => void;
}

export interface PipelineState {
  readonly tracker: unknown;
  readonly windows: unknown;
}

export class ReadingPipeline {
  /** Every ingest record with an offset below this has been processed. */
  processedUpTo = 0;
  replaying = false;
  private readonly gaps: Counter;
  private readonly gapFills: Counter;
  private readonly resets: Counter;
  private readonly late: Counter;
  private readonly windowsEmitted: Counter<'kind'>;
  private lastStats = { gaps: 0, gapFills: 0, resets: 0 };

  constructor(private readonly options: ReadingPipelineOptions) {
    const registers = [options.registry];
    this.gaps = new Counter({ name: 'pulsegate_sequence_gaps_total', help: 'Sequence numbers skipped by devices (loss in transit; see gap fills)', registers });
    this.gapFills = new Counter({ name: 'pulsegate_sequence_gap_fills_total', help: 'Skipped sequence numbers that arrived later, out of order (net loss = gaps - fills)', registers });
    this.resets = new Counter({ name: 'pulsegate_sequence_resets_total', help: 'Device sequence counters that restarted', registers });
    this.late = new Counter({ name: 'pulsegate_late_readings_dropped_total', help: 'Readings later than allowed lateness, kept as dead letters', registers });
    this.windowsEmitted = new Counter({ name: 'pulsegate_windows_emitted_total', help: 'Windows emitted (first emissions and corrections)', labelNames: ['kind'], registers });
    for (const k of options.kinds.keys()) this.windowsEmitted.labels(k).inc(0);
    this.gaps.inc(0);
    options.windows.onEmit((w) => {
      this.windowsEmitted.labels(w.kind).inc();
      options.batcher.addWindow(w);
      options.onWindow?.(w);
    });
    options.windows.onLate((r, sizeMs) => {
      this.late.inc();
      options.onLate(r, sizeMs, this.replaying);
    });
  }

  /**
   * `receivedAt`: when ingest received the publish, from its ingest record; it bounds the
   * windows' watermark, so live and replay must pass the same value. Defaults to the clock.
   */
  process(readings: readonly Reading[], offset: number, receivedAt?: number): void {
    const { tracker, windows, batcher, metrics, writeRawReadings } = this.options;
    let duplicates = 0;
    // The readings of one publish share kind and device (one topic): one dedup key for all.
    let key = '';
    let keyOf: Reading | null = null;
    const now = this.options.clock.now();
    const at = receivedAt ?? now;
    for (const r of readings) {
      if (keyOf === null || r.deviceId !== keyOf.deviceId || r.kind !== keyOf.kind) {
        key = r.kind + '\u0000' + r.deviceId;
        keyOf = r;
      }
      if (tracker.observe(key, r.seq) === 'duplicate') {
        duplicates++;
        continue;
      }
      windows.add(r, now, at);
      if (writeRawReadings) batcher.addReading(r);
    }
    if (duplicates > 0) metrics.duplicate(duplicates);
    this.syncSeqStats();
    if (offset >= this.processedUpTo) this.processedUpTo = offset + 1;
  }

  snapshot(): PipelineState {
    return { tracker: this.options.tracker.snapshot(), windows: this.options.windows.snapshot() };
  }

  restore(state: PipelineState): void {
    this.options.tracker.restore(state.tracker as never);
    this.options.windows.restore(state.windows);
  }

  private syncSeqStats(): void {
    const s = this.options.tracker.stats;
    if (s.gaps !== this.lastStats.gaps) this.gaps.inc(s.gaps - this.lastStats.gaps);
    if (s.gapFills !== this.lastStats.gapFills) this.gapFills.inc(s.gapFills - this.lastStats.gapFills);
    if (s.resets !== this.lastStats.resets) this.resets.inc(s.resets - this.lastStats.resets);
    this.lastStats = { gaps: s.gaps, gapFills: s.gapFills, resets: s.resets };
  }
}
