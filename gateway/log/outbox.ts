import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock } from '../clock.js';
import { GatewayError, isGatewayError } from '../errors.js';
import { encodeDeadLetter } from './dead-letter.js';
import { backoffMs, createStopSignals, isLoggedAttempt, sleepUnlessAborted } from '../backoff.js';
import { createCursorKeeper, cursorFileName } from './consumer-cursor.js';
import { logMetricsFor } from './log-metrics.js';
import type { FileMessageLog } from './message-log.js';
import type { SenderLog } from './sender-log.js';
import { RECORD_TYPES, type LogRecord, type MessageLog } from './types.js';
import type { BatchCovers } from '../sinks/types.js';

/**
 * Payload layouts of the sender-based records:
 *
 *   outgoing:    u8 version=1 | u8 destinationLength | destination utf8 | payload
 *   outgoingAck: u8 version=1 | u8 destinationLength | destination utf8 | u32 offsetLow
 *                | u32 offsetHigh | u8 outcome (0 delivered, 1 dead-lettered)
 */
const VERSION = 1;
const TWO_32 = 2 ** 32;

export const ACK_OUTCOMES = { delivered: 0, deadLettered: 1 } as const;
export type AckOutcome = (typeof ACK_OUTCOMES)[keyof typeof ACK_OUTCOMES];

function destinationBytes(destination: string): Buffer {
  const b = Buffer.from(destination, 'utf8');
  if (b.length === 0 || b.length > 255) throw new RangeError(`outbox destination must be 1..255 bytes, got ${b.length}`);
  return b;
}

export function encodeOutgoing(destination: string | Buffer, payload: Uint8Array): Buffer {
  const d = typeof destination === 'string' ? destinationBytes(destination) : destination;
  const buf = Buffer.allocUnsafe(2 + d.length + payload.length);
  buf[0] = VERSION;
  buf[1] = d.length;
  d.copy(buf, 2);
  buf.set(payload, 2 + d.length);
  return buf;
}

export function encodeOutgoingAck(destination: string | Buffer, offset: number, outcome: AckOutcome): Buffer {
  const d = typeof destination === 'string' ? destinationBytes(destination) : destination;
  const buf = Buffer.allocUnsafe(2 + d.length + 9);
  buf[0] = VERSION;
  buf[1] = d.length;
  d.copy(buf, 2);
  buf.writeUInt32LE(offset % TWO_32, 2 + d.length);
  buf.writeUInt32LE(Math.floor(offset / TWO_32), 6 + d.length);
  buf[10 + d.length] = outcome;
  return buf;
}

export interface OutgoingRecord {
  readonly destination: string;
  readonly payload: Buffer;
}
export interface OutgoingAckRecord {
  readonly destination: string;
  readonly offset: number;
  readonly outcome: AckOutcome;
}

export function decodeOutgoing(buf: Buffer): OutgoingRecord {
  if (buf[0] !== VERSION) throw new Error(`unknown outgoing record version ${String(buf[0])}`);
  const n = buf[1]!;
  return { destination: buf.toString('utf8', 2, 2 + n), payload: buf.subarray(2 + n) };
}

export function decodeOutgoingAck(buf: Buffer): OutgoingAckRecord {
  if (buf[0] !== VERSION) throw new Error(`unknown outgoing ack version ${String(buf[0])}`);
  const n = buf[1]!;
  return {
    destination: buf.toString('utf8', 2, 2 + n),
    offset: buf.readUInt32LE(2 + n) + buf.readUInt32LE(6 + n) * TWO_32,
    outcome: buf[10 + n] as AckOutcome,
  };
}

function isFor(dest: Buffer, payload: Buffer): boolean {
  return payload[0] === VERSION && payload[1] === dest.length && payload.compare(dest, 0, dest.length, 2, 2 + dest.length) === 0;
}

/**
 * Where the chain of the ranges the outgoing records of `destination` cover ends, starting at
 * `from` (the replay's first offset). Fed by the startup pass over the log's tail
 * (primeSenderLogs), in log order: a record whose range starts at or below the chain's end
 * extends it to the range's end. The first record without a range (`coversOf` gives null: a
 * payload of an earlier gateway, or one its sender could no longer vouch for) or with one that
 * starts above the end stops the chain, whatever follows.
 */
export function outgoingCoverage(
  destination: string,
  from: number,
  coversOf: (payload: Buffer) => BatchCovers | null,
): Pick<SenderLog<unknown>, 'type' | 'primer'> & { readonly below: number } {
  const dest = destinationBytes(destination);
  let below = from;
  let stopped = false;
  let chained = 0;
  return {
    type: RECORD_TYPES.outgoing,
    get below() {
      return below;
    },
    primer() {
      return {
        take(record) {
          if (stopped || !isFor(dest, record.payload)) return;
          const range = coversOf(record.payload.subarray(2 + dest.length));
          if (range === null || range.from > below) {
            stopped = true;
            return;
          }
          if (range.below > below) below = range.below;
          chained++;
        },
        done: () => chained,
      };
    },
  };
}

export interface SendContext {
  /** Log offset of the outgoing record: a stable, idempotent id of the batch. */
  readonly offset: number;
  /** 1 for the first try. */
  readonly attempt: number;
  /** Aborted when the outbox closes. */
  readonly signal: AbortSignal;
}

export interface OutboxOptions {
  /** readSpans: start() reads only the outgoing records and acks of the log's tail. */
  readonly log: MessageLog & Pick<FileMessageLog, 'readSpans'>;
  /** 1..255 bytes; one outbox per destination. */
  readonly destination: string;
  /**
   * Delivers one outgoing payload; resolves once the receiver has it durably. A rejection with a
   * GatewayError whose `retryable` is false dead-letters the record; any other rejection backs off
   * and retries the same record.
   */
  readonly send: (payload: Buffer, context: SendContext) => Promise<void>;
  /**
   * Delivers several outgoing payloads at once, in order (the embedded store: in one
   * transaction, all or none); resolves once the receiver has them all durably. Used while more
   * than one record waits (the receiver lags), for up to `maxGroupRecords` of them. A rejection
   * is not judged: the group's records are sent again one by one with `send`, which retries and
   * dead-letters each on its own, so a receiver that took some of them before failing gets those
   * again (sends must be idempotent, as `send`'s retries already require). Absent = one record
   * at a time.
   */
  readonly sendMany?: (payloads: readonly Buffer[], contexts: readonly SendContext[]) => Promise<void>;
  /** Records in one sendMany call. Default 4. */
  readonly maxGroupRecords?: number;
  /** ...and their bytes (a group holds at least two records). Default 4 MiB. */
  readonly maxGroupBytes?: number;
  readonly retry: { readonly initialMs: number; readonly maxMs: number };
  readonly clock?: Clock;
  /** Outgoing records held in memory ahead of the one being sent. Default 16. */
  readonly readAheadRecords?: number;
  /** ...and their bytes (at least one record is always read). Default 4 MiB. */
  readonly readAheadBytes?: number;
  /**
   * Offsets of pending records remembered so the sender reads them directly instead of scanning
   * the log. Overflow policy: forget the oldest and scan for them. Default 65536.
   */
  readonly maxTrackedOffsets?: number;
  /** Where the cursor hint is kept (so start() scans from it, not from the log's first offset). */
  readonly stateDir?: string;
  /** Minimum interval between cursor hint writes. Default 5000. */
  readonly cursorPersistIntervalMs?: number;
  /** Jitter source in [0, 1). */
  readonly random?: () => number;
  /** Told about each dead-lettered record. */
  readonly onDeadLetter?: (offset: number, err: GatewayError) => void;
  /** Told about failed attempts and sender-loop errors. */
  readonly onError?: (err: unknown, context: { offset: number | null; attempt: number }) => void;
  /** Registers the outbox's gauges (pending, oldest un-acked age) on this registry. */
  readonly registry?: Registry;
  /** Logs failed attempts (first and every tenth), dead letters and sender-loop errors. */
  readonly logger?: Logger;
}

export interface Outbox {
  readonly destination: string;
  /** Finds the ack cursor in the log and starts the sender; resends every un-acked record in order. */
  start(): Promise<void>;
  /** Appends an outgoing record; resolves with its offset once it is durable. */
  enqueue(payload: Uint8Array): Promise<number>;
  /** Outgoing records not yet acked (or dead-lettered). */
  readonly pending: number;
  /** Every outgoing record of this destination below this offset is acked: retention's bound. */
  readonly oldestUnackedOffset: number;
  /** Highest acked outgoing offset, -1 if none seen. */
  readonly lastAckedOffset: number;
  /** Age of the oldest pending record by its append time, ms; 0 when none is known to wait. */
  readonly oldestUnackedAgeMs: number;
  readonly delivered: number;
  readonly deadLettered: number;
  readonly retries: number;
  /** sendMany calls that delivered their group (each of its records counts in `delivered`). */
  readonly groupsDelivered: number;
  /** sendMany calls that failed (their records were then sent one by one). */
  readonly groupsFailed: number;
  /**
   * Resolves once nothing is pending (every outgoing record acked or dead-lettered), or when
   * `deadlineMs` has passed, or on close, with the records still pending: shutdown delivers what
   * it can while the destination answers, and the rest stays in the log for the next start.
   */
  drain(deadlineMs: number): Promise<number>;
  /**
   * Idempotent: stops the sender and saves the cursor hint. An in-flight send gets `graceMs`
   * (default 0) to finish and be acked before it is aborted; an aborted one is resent after the
   * next start.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

interface Pending {
  readonly offset: number;
  readonly timestamp: number;
  readonly payload: Buffer;
}

/** Creates the outbox of one destination; start() finds its cursor and begins sending. */
export function createOutbox(options: OutboxOptions): Outbox {
  const { log, send } = options;
  const destination = options.destination;
  const dest = destinationBytes(destination);
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const readAheadRecords = Math.max(1, options.readAheadRecords ?? 16);
  const readAheadBytes = options.readAheadBytes ?? 4 * 1024 * 1024;
  const maxTracked = Math.max(1, options.maxTrackedOffsets ?? 65_536);
  const sendMany = options.sendMany;
  const maxGroupRecords = Math.max(2, options.maxGroupRecords ?? 4);
  const maxGroupBytes = options.maxGroupBytes ?? 4 * 1024 * 1024;

  // Offsets (and append times) of pending records at or above `trackedFloor`, in order.
  let tracked: number[] = [];
  let trackedTimes: number[] = [];
  let trackedHead = 0;
  let trackedFloor = 0;

  const readAhead: Pending[] = [];
  // Enqueued while start() scans the log.
  let early: { offset: number; time: number }[] = [];
  let readPos = 0;
  let lastAcked = -1;
  let pending = 0;
  let delivered = 0;
  let deadLettered = 0;
  let retries = 0;
  let groupsDelivered = 0;
  let groupsFailed = 0;
  let started = false;
  let closing = false;
  let dirty = false;
  let wake: (() => void) | null = null;
  let loop: Promise<void> | null = null;
  let closePromise: Promise<void> | null = null;
  // Two signals: backoff sleeps end at once on close; a send in flight gets its grace first.
  const stops = createStopSignals();
  const logger = options.logger;
  function reportError(err: unknown, context: { offset: number | null; attempt: number }): void {
    options.onError?.(err, context);
    if (logger === undefined) return;
    if (context.attempt === 0) logger.error({ err, destination, offset: context.offset }, 'outbox sender failed; retrying from the log');
    else if (isLoggedAttempt(context.attempt)) {
      logger.warn({ err, destination, offset: context.offset, attempt: context.attempt }, 'outbox send failed; backing off');
    }
  }

  function trackedLength(): number {
    return tracked.length - trackedHead;
  }
  function track(offset: number, time: number): void {
    tracked.push(offset);
    trackedTimes.push(time);
    if (trackedLength() > maxTracked) {
      trackedHead++;
      trackedFloor = tracked[trackedHead]!;
    }
    if (trackedHead > 1024 && trackedHead * 2 > tracked.length) {
      tracked = tracked.slice(trackedHead);
      trackedTimes = trackedTimes.slice(trackedHead);
      trackedHead = 0;
    }
  }
  /** Drops a tracked (or early) offset whose append failed. */
  function forget(offset: number): void {
    const e = early.findIndex((x) => x.offset === offset);
    if (e >= 0) {
      early.splice(e, 1);
      return;
    }
    for (let i = tracked.length - 1; i >= trackedHead; i--) {
      if (tracked[i] !== offset) continue;
      tracked.splice(i, 1);
      trackedTimes.splice(i, 1);
      pending = Math.max(0, pending - 1);
      settleDrains();
      return;
    }
  }
  function dropTrackedThrough(offset: number): void {
    while (trackedHead < tracked.length && tracked[trackedHead]! <= offset) trackedHead++;
  }

  function signal(): void {
    dirty = true;
    const w = wake;
    wake = null;
    w?.();
  }

  const sleep = (ms: number): Promise<void> => sleepUnlessAborted(ms, stops.idle);
  const backoff = (attempt: number): number => backoffMs(options.retry, attempt, random);

  function safeOffset(): number {
    if (!started) return Math.max(readPos, log.firstOffset);
    if (readAhead.length > 0) return readAhead[0]!.offset;
    if (readPos < trackedFloor) return readPos;
    dropTrackedThrough(readPos - 1);
    return trackedLength() > 0 ? tracked[trackedHead]! : log.nextOffset;
  }

  // The cursor is a hint (the acks in the log are the truth): everything below its offset is acked.
  const cursor = createCursorKeeper<{ lastAcked: number }>({
    stateDir: options.stateDir,
    name: cursorFileName('outbox', destination),
    label: `outbox cursor of ${destination}`,
    fallback: 'scanning the whole log for unacknowledged batches',
    snapshot: () => ({ offset: safeOffset(), data: { lastAcked } }),
    intervalMs: options.cursorPersistIntervalMs ?? 5000,
    clock,
    logger,
    onWriteError: (err) => reportError(err, { offset: null, attempt: 0 }),
  });

  async function scanAtStart(): Promise<void> {
    // Ahead of the log (it lost records it once held) or damaged: load() says so, a scan finds the truth.
    const hint = await cursor.load(log);
    let from = log.firstOffset;
    if (hint !== null && hint.offset >= from) {
      from = hint.offset;
      lastAcked = hint.data.lastAcked;
    }
    readPos = from;
    trackedFloor = from;
    let outgoing = 0;
    let acks = 0;
    // Records enqueued before this point are found by the scan; later ones are tracked after it.
    const end = log.nextOffset;
    early = [];
    // The records of other types (the ingest records, most of the tail) are passed over unread.
    for await (const span of log.readSpans(from, end, [RECORD_TYPES.outgoing, RECORD_TYPES.outgoingAck])) {
      for (const r of span.records) {
        if (!isFor(dest, r.payload)) continue;
        if (r.type === RECORD_TYPES.outgoing) {
          outgoing++;
          track(r.offset, r.timestamp);
          continue;
        }
        const ack = decodeOutgoingAck(r.payload);
        if (ack.offset < from) continue;
        acks++;
        if (ack.offset > lastAcked) lastAcked = ack.offset;
        dropTrackedThrough(ack.offset);
      }
    }
    pending = Math.max(0, outgoing - acks);
    for (const e of early) {
      track(e.offset, e.time);
      pending++;
    }
    early = [];
  }

  function take(r: LogRecord): Pending {
    // A copy: the record's payload is a view of a shared read chunk.
    return { offset: r.offset, timestamp: r.timestamp, payload: Buffer.from(r.payload.subarray(2 + dest.length)) };
  }

  async function fill(): Promise<void> {
    dirty = false;
    // What is read ahead already counts (fill() also tops up a non-empty read-ahead).
    let bytes = 0;
    for (const r of readAhead) bytes += r.payload.length;
    const full = (): boolean => readAhead.length >= readAheadRecords || bytes >= readAheadBytes;
    if (full()) return;
    if (readPos < trackedFloor) {
      // The offsets here were forgotten (tracking overflow or a long backlog): scan the log.
      const end = Math.min(trackedFloor, log.nextOffset);
      let next = end;
      for await (const r of log.read(readPos, end)) {
        if (r.type === RECORD_TYPES.outgoing && r.offset > lastAcked && isFor(dest, r.payload)) {
          readAhead.push(take(r));
          bytes += r.payload.length;
          if (full()) {
            next = r.offset + 1;
            break;
          }
        }
      }
      readPos = next;
    }
    while (readPos >= trackedFloor && !full()) {
      dropTrackedThrough(readPos - 1);
      if (trackedLength() === 0) return;
      const offset = tracked[trackedHead]!;
      for await (const r of log.read(offset, offset + 1)) {
        if (r.type !== RECORD_TYPES.outgoing || !isFor(dest, r.payload)) continue;
        readAhead.push(take(r));
        bytes += r.payload.length;
      }
      readPos = offset + 1;
    }
  }

  /** Appends the ack of a delivered record; resolves once it is durable. */
  function deliveredAck(rec: Pending): Promise<number> {
    return log.appendDurable(RECORD_TYPES.outgoingAck, encodeOutgoingAck(dest, rec.offset, ACK_OUTCOMES.delivered));
  }

  async function deliver(rec: Pending): Promise<void> {
    for (let attempt = 1; !closing; attempt++) {
      try {
        await send(rec.payload, { offset: rec.offset, attempt, signal: stops.work });
        await deliveredAck(rec);
        delivered++;
        return finish(rec);
      } catch (err) {
        if (closing) return;
        // A log failure while acking is never the record's fault: it is retried, not dead-lettered.
        if (isGatewayError(err) && !err.retryable && err.code !== 'GW_ERR_LOG_CLOSED' && err.code !== 'GW_ERR_LOG_IO') {
          const detail = `${err.code}: ${err.message} (outgoing offset ${rec.offset})`;
          await log.appendDurable(
            RECORD_TYPES.deadLetter,
            encodeDeadLetter({ at: clock.now(), reason: 'outbox-rejected', topic: `outbox/${destination}`, detail, payload: rec.payload }),
          );
          await log.appendDurable(RECORD_TYPES.outgoingAck, encodeOutgoingAck(dest, rec.offset, ACK_OUTCOMES.deadLettered));
          deadLettered++;
          options.onDeadLetter?.(rec.offset, err);
          logger?.error({ err, destination, offset: rec.offset }, 'outbox record refused for good: dead-lettered');
          return finish(rec);
        }
        retries++;
        reportError(err, { offset: rec.offset, attempt });
        await sleep(backoff(attempt));
      }
    }
  }

  /** The first records of the read-ahead that go in one sendMany call; fewer than two: none. */
  function group(): Pending[] {
    if (sendMany === undefined || readAhead.length < 2) return [];
    const recs = [readAhead[0]!];
    let bytes = recs[0]!.payload.length;
    for (let i = 1; i < readAhead.length && recs.length < maxGroupRecords; i++) {
      const next = readAhead[i]!;
      if (bytes + next.payload.length > maxGroupBytes) break;
      recs.push(next);
      bytes += next.payload.length;
    }
    return recs.length < 2 ? [] : recs;
  }

  /**
   * One sendMany call for `recs` (the head of the read-ahead), then their acks, appended
   * together (one group commit). False when the call failed: nothing is acked, and the caller
   * sends the records one by one.
   */
  async function deliverGroup(recs: readonly Pending[]): Promise<boolean> {
    try {
      await sendMany!(
        recs.map((r) => r.payload),
        recs.map((r) => ({ offset: r.offset, attempt: 1, signal: stops.work })),
      );
    } catch (err) {
      if (closing) return true;
      groupsFailed++;
      logger?.debug({ err, destination, offsets: recs.map((r) => r.offset) }, 'outbox group send failed; sending its records one by one');
      return false;
    }
    // The acks are appended in order and become durable in order: those that did are finished,
    // so none is written twice; a log failure then propagates (run() backs off and reads the rest
    // again, resent: writes are idempotent).
    const acked = await Promise.allSettled(recs.map(deliveredAck));
    for (let i = 0; i < recs.length; i++) {
      const a = acked[i]!;
      if (a.status === 'rejected') throw a.reason;
      delivered++;
      finish(recs[i]!);
    }
    groupsDelivered++;
    return true;
  }

  function finish(rec: Pending): void {
    readAhead.shift();
    if (rec.offset > lastAcked) lastAcked = rec.offset;
    pending = Math.max(0, pending - 1);
    void cursor.persist();
    settleDrains();
  }

  // drain(): woken by the ack that empties the outbox, not by polling.
  const drainWaiters: (() => void)[] = [];
  function settleDrains(): void {
    if (pending === 0 || closing) for (const w of drainWaiters.splice(0)) w();
  }

  async function run(): Promise<void> {
    let failures = 0;
    // Records of a failed group still to send one by one before the next group.
    let singles = 0;
    while (!closing) {
      try {
        if (readAhead.length === 0) {
          await fill();
          if (readAhead.length === 0) {
            if (!dirty && !closing) await new Promise<void>((resolve) => (wake = resolve));
            continue;
          }
        }
        if (singles === 0) {
          // Read ahead what arrived since: a group is formed from all that waits.
          if (sendMany !== undefined && readAhead.length < maxGroupRecords) await fill();
          const recs = group();
          if (recs.length > 0 && (await deliverGroup(recs))) {
            failures = 0;
            continue;
          }
          singles = recs.length;
        }
        await deliver(readAhead[0]!);
        if (singles > 0) singles--;
        failures = 0;
      } catch (err) {
        // The log itself failed (read, ack append): report, back off, try again from disk.
        if (closing) break;
        reportError(err, { offset: readAhead[0]?.offset ?? null, attempt: 0 });
        readAhead.length = 0;
        singles = 0;
        const tracedFrom = readPos;
        readPos = Math.min(readPos, lastAcked + 1);
        trackedFloor = Math.max(trackedFloor, tracedFrom);
        await sleep(backoff(++failures));
      }
    }
  }

  const outbox: Outbox = {
    destination,
    async start() {
      if (started || closing) return;
      await scanAtStart();
      started = true;
      loop = run();
    },
    enqueue(payload) {
      if (closing) return Promise.reject(new GatewayError('GW_ERR_LOG_CLOSED', `outbox ${destination} is closed`));
      return new Promise<number>((resolve, reject) => {
        const offset = log.append(RECORD_TYPES.outgoing, encodeOutgoing(dest, payload), (err, off) => {
          if (err === null) return resolve(off);
          // The log failed before the record was durable and hands its offset out again after
          // it recovers (to another record): forget it, or the sender would read that one.
          if (off >= 0) forget(off);
          reject(err);
        });
        if (offset < 0) return;
        if (!started) {
          early.push({ offset, time: clock.now() });
          return;
        }
        track(offset, clock.now());
        pending++;
        signal();
      });
    },
    get pending() {
      return pending;
    },
    get oldestUnackedOffset() {
      return safeOffset();
    },
    get lastAckedOffset() {
      return lastAcked;
    },
    get oldestUnackedAgeMs() {
      let t: number | undefined;
      if (readAhead.length > 0) t = readAhead[0]!.timestamp;
      else if (readPos >= trackedFloor) {
        dropTrackedThrough(readPos - 1);
        if (trackedLength() > 0) t = trackedTimes[trackedHead];
      }
      return t === undefined ? 0 : Math.max(0, clock.now() - t);
    },
    get delivered() {
      return delivered;
    },
    get deadLettered() {
      return deadLettered;
    },
    get retries() {
      return retries;
    },
    get groupsDelivered() {
      return groupsDelivered;
    },
    get groupsFailed() {
      return groupsFailed;
    },
    drain(deadlineMs) {
      if (pending === 0 || closing) return Promise.resolve(pending);
      return new Promise<number>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          const i = drainWaiters.indexOf(done);
          if (i >= 0) drainWaiters.splice(i, 1);
          resolve(pending);
        };
        const timer = setTimeout(done, deadlineMs);
        drainWaiters.push(done);
      });
    },
    close(closeOptions) {
      closePromise ??= (async () => {
        closing = true;
        settleDrains();
        signal();
        await stops.stop(loop, closeOptions?.graceMs ?? 0);
        if (started) await cursor.flush();
        else await cursor.stop();
      })();
      return closePromise;
    },
  };
  if (options.registry !== undefined) logMetricsFor(options.registry).attachOutbox(outbox);
  return outbox;
}
