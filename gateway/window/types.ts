import type { StatefulStage } from '../checkpoint/stateful-stage.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { WindowFields } from '../wire/window.js';

/** One emitted window (its fields are the window wire format's, gateway/wire/window.ts). */
export type WindowResult = WindowFields;

/** A stateful stage of the checkpoint, named 'windows'. */
export interface WindowEngine extends StatefulStage {
  /**
   * Adds one accepted, deduplicated reading (in arrival order).
   * `now`: the arrival time for idle detection (the clock's, read once per publish by callers
   * that have it). `receivedAt`: when ingest received the reading, as kept in the log's ingest
   * record (so replay gives the same result); bounds the watermark. Defaults to `now`.
   */
  add(reading: Reading, now?: number, receivedAt?: number): void;
  /**
   * Adds accepted readings in order, exactly as add() on each would (same windows, emissions,
   * late reports and stats), all with the same `now` and `receivedAt`: the readings of one
   * publish. A run of readings from one device finds kind and device once.
   */
  addMany(readings: readonly Reading[], now?: number, receivedAt?: number): void;
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
