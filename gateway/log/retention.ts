import type { FileMessageLog } from './message-log.js';

export interface RetentionOptions {
  /** Records older than this (by append time) may go. */
  readonly retentionMs: number;
  /** Current time, ms. */
  readonly now: number;
  /**
   * No record at or above this offset may be deleted: the minimum of the latest checkpoint offset,
   * every outbox's oldest un-acked offset and every log consumer's durable cursor (see
   * protectedOffsetOf).
   */
  readonly protectedOffset: number;
}

export interface RetentionResult {
  readonly deleted: readonly string[];
  readonly freedBytes: number;
  readonly protectedOffset: number;
  /** Why the oldest remaining segment stays: too young, still needed, or the active segment. */
  readonly stoppedBy: 'age' | 'protected' | 'active' | 'none';
}

/**
 * Deletes whole segments from the head of the log while every record in them is older than the
 * retention and below the protected offset. It stops at the first segment that must stay, so the
 * log never has a hole, and it never deletes the segment appends go to.
 */
export async function applyRetention(log: FileMessageLog, options: RetentionOptions): Promise<RetentionResult> {
  const cutoff = options.now - options.retentionMs;
  let before = -1;
  let freedBytes = 0;
  let stoppedBy: RetentionResult['stoppedBy'] = 'none';
  for (const seg of log.segments()) {
    if (seg.active) {
      stoppedBy = 'active';
      break;
    }
    if (seg.lastOffset >= options.protectedOffset) {
      stoppedBy = 'protected';
      break;
    }
    // An empty segment (NaN timestamp) holds nothing worth keeping.
    if (seg.lastTimestamp >= cutoff) {
      stoppedBy = 'age';
      break;
    }
    before = seg.lastOffset + 1;
    freedBytes += seg.bytes;
  }
  const deleted = before < 0 ? [] : await log.deleteSegmentsBefore(before);
  return { deleted, freedBytes: deleted.length > 0 ? freedBytes : 0, protectedOffset: options.protectedOffset, stoppedBy };
}

/**
 * The offset below which every record is no longer needed: covered by the latest checkpoint
 * (null = none written yet, which protects everything), acked by every outbox, and behind the
 * cursor every log consumer has on disk (where it resumes after a crash: see log-consumer.ts). A
 * consumer that lags or stops therefore keeps its segments, however old; the disk high-water mark
 * (log.diskHighWaterBytes) is what bounds that.
 */
export function protectedOffsetOf(parts: {
  readonly checkpointOffsets: readonly (number | null)[];
  readonly outboxes: readonly { readonly oldestUnackedOffset: number }[];
  readonly consumers?: readonly { readonly oldestUnackedOffset: number }[];
}): number {
  let min = Number.MAX_SAFE_INTEGER;
  for (const c of parts.checkpointOffsets) min = Math.min(min, c ?? 0);
  for (const o of parts.outboxes) min = Math.min(min, o.oldestUnackedOffset);
  for (const c of parts.consumers ?? []) min = Math.min(min, c.oldestUnackedOffset);
  return min;
}
