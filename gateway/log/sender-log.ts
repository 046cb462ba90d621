import type { Logger } from 'pino';
import { decodeAlertTransition, encodeAlertTransition, type AlertTransition } from '../wire/alert.js';
import { decodeWindowTransition, encodeWindowTransition, windowIdentity, type WindowTransition } from '../wire/window.js';
import type { FileMessageLog } from './message-log.js';
import { RECORD_TYPES, type LogRecord, type MessageLog, type RecordType } from './types.js';

/**
 * Sender-based logging of what the gateway tells the outside (alert transitions, window results):
 * each item is appended to the log before anyone is told, and an item already in the log from
 * before a restart is not appended again.
 *
 * After a crash, recovery replays the ingest records after the checkpoint and the stages emit
 * again what they emitted then; the items of those emissions that reached the log before the
 * crash are found by prime() (a read of the records of `type` after the checkpoint's offset) and
 * recognised by their key (e.g. alert id + state), so the log, and every consumer reading it
 * (MQTT republish, SSE, webhooks), gets each item once.
 *
 * Memory: the keys primed are those logged between the last checkpoint and the crash (a
 * checkpoint interval's worth); at most `maxPrimed` are kept (overflow policy: stop priming; a
 * later item then may be logged twice, and the count is logged).
 */
export interface SenderLog<T> {
  /** The record type it logs. */
  readonly type: RecordType;
  /** Reads the records of the type at offsets >= `from` and remembers their keys; returns how many. */
  prime(from: number): Promise<number>;
  /**
   * prime() on records read by someone else (primeSenderLogs: one read for several sender logs):
   * take() each record of the type, then done() once, which returns how many are remembered.
   */
  primer(): { take(record: LogRecord): void; done(): number };
  /**
   * Appends `item` unless it is in the log already (then `logged`, with the offset it has there,
   * and `item` is the one in the log — with `decode`, as it was told then, e.g. a silence FIRING
   * found again after a restart keeps its first firedAt). Never throws: a record the log refuses
   * gives offset -1, `logged` false, and is logged as an error.
   */
  append(item: T): { readonly offset: number; readonly logged: boolean; readonly item: T };
  /**
   * The items primed that no append has matched yet, in log order (needs `decode`). After replay
   * these are what the log says was told before the crash but replay did not produce again:
   * items of a clock, not of ingest records (a silence check, a device's birth or death).
   */
  unmatched(): { readonly item: T; readonly offset: number }[];
  /** Items not appended because they were in the log already, since start. */
  readonly skipped: number;
}

export interface SenderLogOptions<T> {
  readonly log: Pick<MessageLog, 'append' | 'read'>;
  readonly type: RecordType;
  readonly encode: (item: T) => Uint8Array;
  readonly keyOf: (item: T) => string;
  /** The item of a record (its key is keyOf of it); throws for a payload that is not one (it is passed over). */
  readonly decode: (record: LogRecord) => T;
  readonly maxPrimed?: number;
  readonly logger?: Logger;
  /** Names the items in messages ("alert transition", "window"). */
  readonly what: string;
}

export function createSenderLog<T>(options: SenderLogOptions<T>): SenderLog<T> {
  const primed = new Map<string, { readonly offset: number; readonly item: T }>();
  const maxPrimed = options.maxPrimed ?? 1_000_000;
  let skipped = 0;
  function primer(): { take(record: LogRecord): void; done(): number } {
    let overflow = 0;
    return {
      take(record) {
        if (record.type !== options.type) return;
        let item: T;
        try {
          item = options.decode(record);
        } catch {
          // Not an item of this type (a damaged or foreign payload): nothing to recognise.
          return;
        }
        const key = options.keyOf(item);
        if (primed.size >= maxPrimed) overflow++;
        else primed.set(key, { offset: record.offset, item });
      },
      done() {
        if (overflow > 0) options.logger?.error({ overflow, maxPrimed }, `more ${options.what} records after the checkpoint than can be remembered: some may be logged twice`);
        return primed.size;
      },
    };
  }
  return {
    get skipped() {
      return skipped;
    },
    type: options.type,
    primer,
    async prime(from) {
      const p = primer();
      for await (const record of options.log.read(from)) p.take(record);
      return p.done();
    },
    unmatched() {
      const out: { item: T; offset: number }[] = [];
      for (const p of primed.values()) out.push({ item: p.item, offset: p.offset });
      return out.sort((a, b) => a.offset - b.offset);
    },
    append(item) {
      if (primed.size > 0) {
        const key = options.keyOf(item);
        const at = primed.get(key);
        if (at !== undefined) {
          primed.delete(key);
          skipped++;
          return { offset: at.offset, logged: true, item: at.item };
        }
      }
      const offset = options.log.append(options.type, options.encode(item), (err) => {
        if (err !== null) options.logger?.error({ err }, `a ${options.what} record did not become durable`);
      });
      return { offset, logged: false, item };
    },
  };
}

/** The sender log of alert transitions (record type alert), keyed by (id, state). */
export function createAlertSenderLog(log: SenderLogOptions<AlertTransition>['log'], logger?: Logger): SenderLog<AlertTransition> {
  return createSenderLog<AlertTransition>({
    log,
    type: RECORD_TYPES.alert,
    what: 'alert transition',
    encode: encodeAlertTransition,
    keyOf: (t) => `${t.id}:${t.state}`,
    decode: (r) => decodeAlertTransition(r.payload),
    ...(logger === undefined ? {} : { logger }),
  });
}

/**
 * The sender log of window results (record type window). The values are part of the key: a
 * half-filled window emitted at shutdown and the complete one emitted after the restart (same
 * identity and revision) are both told.
 */
export function createWindowSenderLog(log: SenderLogOptions<WindowTransition>['log'], logger?: Logger): SenderLog<WindowTransition> {
  return createSenderLog<WindowTransition>({
    log,
    type: RECORD_TYPES.window,
    what: 'window',
    encode: encodeWindowTransition,
    keyOf: (w) => `${windowIdentity(w)}#${w.revision}#${JSON.stringify(w.values)}`,
    decode: (r) => decodeWindowTransition(r.payload),
    ...(logger === undefined ? {} : { logger }),
  });
}

/**
 * Primes several sender logs (each of its own record type) from one read of the log at offsets
 * >= `from`, instead of one read each: startup reads the tail after the checkpoint once for all of
 * them (and for other readers of the tail with a primer: outgoingCoverage). Returns how many items
 * each remembers, in the order given.
 */
export async function primeSenderLogs(log: Pick<FileMessageLog, 'readSpans'>, from: number, logs: readonly Pick<SenderLog<unknown>, 'type' | 'primer'>[]): Promise<number[]> {
  const primers = logs.map((l) => l.primer());
  const byType = new Map<RecordType, { take(record: LogRecord): void }[]>();
  for (let i = 0; i < logs.length; i++) {
    const list = byType.get(logs[i]!.type) ?? [];
    list.push(primers[i]!);
    byType.set(logs[i]!.type, list);
  }
  // Records of other types (the ingest records, most of the tail) are passed over unread.
  for await (const span of log.readSpans(from, undefined, [...byType.keys()])) {
    for (const record of span.records) for (const p of byType.get(record.type)!) p.take(record);
  }
  return primers.map((p) => p.done());
}

/**
 * Where startup primes the sender logs from: the log's next offset when the checkpoint's state
 * was captured. A stage appends its items after every ingest record appended so far, so an item
 * told just before the capture can sit above the checkpoint's offset while the state already
 * holds it; primed, nothing in the replay would match it and it would be taken as told but not
 * replayed (adoptLogged), firing again an episode the replay resolves. A checkpoint written
 * before capturedNext was kept primes from its offset, as it did.
 */
export function senderLogsPrimeFrom(checkpoint: { readonly offset: number; readonly capturedNext?: number } | null, log: { readonly firstOffset: number }): number {
  // The checkpoint store reads a capturedNext only at or above its checkpoint's offset.
  return Math.max(checkpoint === null ? 0 : (checkpoint.capturedNext ?? checkpoint.offset), log.firstOffset);
}
