import type { StatefulStage } from '../checkpoint/stateful-stage.js';
import type { Reading } from '../kinds/kind-descriptor.js';

/** One emitted window: identity (kind, deviceId, sizeMs, start, group) + aggregates. */
export interface WindowResult {
  readonly kind: string;
  readonly deviceId: string;
  /** Window length; for sliding windows `slideMs` says how often one starts. */
  readonly sizeMs: number;
  readonly slideMs: number;
  /** Inclusive start / exclusive end, event time, ms since epoch, aligned to UTC. */
  readonly start: number;
  readonly end: number;
  /** Values of the kind's window.groupBy fields, as strings (e.g. { vehicleClass: 'TRUCK', lane: '2' }). */
  readonly group: Readonly<Record<string, string>>;
  /** Aggregate columns named by aggregateColumn(), e.g. { count: 12 } or { bpm_min: 61, ... }. */
  readonly values: Readonly<Record<string, number>>;
  /** 0 for the first emission, +1 for every correction by late data (same identity: overwrite). */
  readonly revision: number;
}

/** A stateful stage of the checkpoint, named 'windows'. */
export interface WindowEngine extends StatefulStage {
  /**
   * Adds one accepted, deduplicated reading (in arrival order).
   * `now`: the arrival time for idle detection (the clock's, read once per publish by callers
   * that have it). `receivedAt`: when ingest received the reading, as kept in the log's ingest
   * record (so replay gives the same result); bounds the watermark. Defaults to `now`.
   */
  add(reading: Reading, now?: number, receivedAt?: number): void;
  /** Lets idle windows close by the injected clock; called on a timer and after replay. */
  tick(): void;
  /** Emits every open window (shutdown); nothing half-filled is lost. */
  flush(): void;
  /** Receives every emitted window (first emission and corrections). */
  onEmit(listener: (window: WindowResult) => void): void;
  /**
   * Receives readings later than allowed lateness (to be dead-lettered and counted): once per
   * reading and window definition (sizeMs, slideMs) that took none of it.
   */
  onLate(listener: (reading: Reading, sizeMs: number, slideMs: number) => void): void;
}
