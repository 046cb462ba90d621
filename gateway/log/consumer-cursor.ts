import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { createCheckpointStore, type CheckpointStore } from './checkpoint-store.js';
import type { MessageLog } from './types.js';

/**
 * The durable cursor of one reader of the log (an outbox, a log consumer): "every record of mine
 * below `offset` is done", plus a little reader-specific `data`. Kept in a checkpoint store (temp
 * file, fsync, rename, fsync of the directory), so a crash leaves the previous cursor, never half
 * of one. Writes are throttled to one per `intervalMs`, one at a time; a write skipped by the
 * throttle (or while another is in flight) is made when the interval ends, so the cursor on disk
 * never stays behind for longer than about `intervalMs` plus one write.
 */
export interface CursorState<D> {
  readonly offset: number;
  readonly data: D;
}

export interface CursorKeeperOptions<D> {
  /** No directory: the cursor is not kept (the reader starts from its default each time). */
  readonly stateDir: string | undefined;
  /** File name prefix; anything outside [A-Za-z0-9_-] becomes "_". */
  readonly name: string;
  /** What the cursor belongs to, for log lines ("outbox cursor of influx"). */
  readonly label: string;
  /** What the reader does instead of using a damaged or impossible cursor, for log lines. */
  readonly fallback: string;
  /** The state to write, taken at write time. */
  readonly snapshot: () => CursorState<D>;
  readonly intervalMs: number;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Told about a failed write (the next write tries again). */
  readonly onWriteError: (err: unknown) => void;
}

export interface CursorKeeper<D> {
  readonly enabled: boolean;
  /**
   * The saved cursor; null when there is none, when every copy is damaged, or when it is ahead of
   * the log (the log lost records it once held, so the cursor means nothing here). Each case but
   * the first is logged as a warning. A cursor below the log's first offset is returned as it is.
   */
  load(log: Pick<MessageLog, 'nextOffset'>): Promise<CursorState<D> | null>;
  /** Writes the snapshot unless throttled (then later); `force` skips the throttle. Never rejects. */
  persist(force?: boolean): Promise<void>;
  /** Offset of the newest cursor written or loaded; null before either. */
  readonly savedOffset: number | null;
  /** Stops the deferred write, waits for one in flight, and writes the snapshot once more. */
  flush(): Promise<void>;
  /** Stops the deferred write and waits for one in flight (no final write). */
  stop(): Promise<void>;
}

export function cursorFileName(prefix: string, name: string): string {
  return `${prefix}-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

export function createCursorKeeper<D>(options: CursorKeeperOptions<D>): CursorKeeper<D> {
  const { clock, logger, label } = options;
  const store: CheckpointStore<D> | null =
    options.stateDir === undefined ? null : createCheckpointStore<D>({ dir: options.stateDir, name: options.name, clock });
  let lastWrite = -Infinity;
  let inFlight: Promise<void> | null = null;
  let deferred: NodeJS.Timeout | null = null;
  let stopped = false;
  // A persist() came while a write was in flight: write again once the interval allows.
  let again = false;
  let savedOffset: number | null = null;

  function write(): Promise<void> {
    lastWrite = clock.now();
    const state = options.snapshot();
    const p = store!
      .write({ offset: state.offset, data: state.data })
      .then(() => {
        savedOffset = state.offset;
      })
      .catch((err: unknown) => options.onWriteError(err))
      .finally(() => {
        inFlight = null;
        if (again) {
          again = false;
          defer(options.intervalMs - (clock.now() - lastWrite));
        }
      });
    inFlight = p;
    return p;
  }

  function defer(ms: number): void {
    if (deferred !== null || stopped) return;
    // The interval is over when the timer fires: write then, without asking the clock again (an
    // injected clock need not move with timers).
    deferred = setTimeout(() => {
      deferred = null;
      if (inFlight !== null) again = true;
      else void write();
    }, Math.max(0, ms));
    deferred.unref();
  }

  function persist(force = false): Promise<void> {
    if (store === null) return Promise.resolve();
    if (inFlight !== null) {
      // Written after the one in flight, so the newest state reaches the disk too.
      again = true;
      return inFlight;
    }
    const wait = options.intervalMs - (clock.now() - lastWrite);
    if (!force && wait > 0) {
      defer(wait);
      return Promise.resolve();
    }
    if (deferred !== null) clearTimeout(deferred);
    deferred = null;
    return write();
  }

  async function stop(): Promise<void> {
    stopped = true;
    again = false;
    if (deferred !== null) clearTimeout(deferred);
    deferred = null;
    if (inFlight !== null) await inFlight;
  }

  return {
    enabled: store !== null,
    async load(log) {
      if (store === null) return null;
      const saved = await store.read();
      if (store.unreadable.length > 0) {
        logger?.warn(
          { cursor: label, unreadable: store.unreadable, usedOffset: saved?.offset ?? null },
          saved === null
            ? `damaged ${label} file(s) ignored; ${options.fallback} instead`
            : `damaged ${label} file(s) ignored; using the older cursor at offset ${saved.offset} instead`,
        );
      }
      if (saved === null) return null;
      if (saved.offset > log.nextOffset) {
        savedOffset = null;
        logger?.warn(
          { cursor: label, cursorOffset: saved.offset, logNextOffset: log.nextOffset },
          `${label} is ahead of the log (offset ${saved.offset} > ${log.nextOffset}); ignored, ${options.fallback} instead`,
        );
        return null;
      }
      savedOffset = saved.offset;
      return { offset: saved.offset, data: saved.data };
    },
    persist,
    get savedOffset() {
      return savedOffset;
    },
    async flush() {
      await stop();
      if (store !== null) await write();
    },
    stop,
  };
}
