import type { FileMessageLog } from './message-log.js';
import type { RecordType, TailItem } from './types.js';

export type { TailItem } from './types.js';

export interface TailOptions {
  /** Aborting it ends the iteration cleanly (also while it waits for new records). */
  readonly signal?: AbortSignal;
  /** Only records of these types are handed out; the others are passed over. Default: all. */
  readonly types?: readonly RecordType[];
  /**
   * Told, after the items before it were taken, that every offset below `next` was looked at: what
   * a follower of some types needs to move its cursor over records of other types it never sees.
   */
  readonly onPassed?: (next: number) => void;
}

export type TailLog = Pick<FileMessageLog, 'firstOffset' | 'durableOffset' | 'readSpans' | 'whenDurableBeyond'>;

/**
 * Follows the log: hands out the durable records from `from` on, then waits for new ones to become
 * durable (woken by the group commit, no polling) and hands those out too, for as long as the
 * caller iterates. Ends cleanly when `options.signal` aborts or the log closes; a read error of
 * the log (a damaged record) is thrown. Records near the head of the log come from the log's tail
 * cache, older ones from disk. Memory: one read chunk of the log at a time (a few hundred KiB, or
 * one record if larger); the reader reads only as fast as the caller takes items — the log on
 * disk is the queue (overflow policy: pause reading). An offset `from` past the log's end waits
 * for that offset.
 */
export async function* tailLog(log: TailLog, from: number, options: TailOptions = {}): AsyncGenerator<TailItem, void, undefined> {
  const { signal } = options;
  const aborted = (): boolean => signal?.aborted === true;
  let next = Math.max(0, from);
  const first = log.firstOffset;
  if (next < first) {
    yield { kind: 'earliest', requested: next, firstOffset: first };
    next = first;
  }
  const gapAt = (at: number, to: number): TailItem => ({ kind: 'gap', from: at, to, reason: log.firstOffset > at ? 'retention' : 'damaged' });
  while (!aborted()) {
    const end = log.durableOffset;
    if (next < end) {
      let expected = next;
      for await (const span of log.readSpans(next, end, options.types ?? null)) {
        if (span.from > expected) yield gapAt(expected, span.from);
        for (const r of span.records) {
          yield { kind: 'record', record: r };
          if (aborted()) return;
        }
        expected = span.to;
        options.onPassed?.(expected);
        if (aborted()) return;
      }
      // The read ended short of `end`: the rest was deleted under it (the active segment never is).
      if (expected < end) yield gapAt(expected, end);
      next = end;
      continue;
    }
    try {
      await log.whenDurableBeyond(next, signal);
    } catch (err) {
      // Aborted, or the log closed: the follow is over.
      if (aborted() || (err as { code?: string }).code === 'GW_ERR_LOG_CLOSED') return;
      throw err;
    }
  }
}
