import { sleepUnlessAborted } from '../backoff.js';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import type { EventBus } from '../events.js';
import { isPayloadReadings, type BatchCovers, type HealthSample, type OutgoingBatch, type PayloadLimits, type PayloadReadings } from '../sinks/types.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { WindowResult } from '../window/types.js';
import { toAlertEvent, type AlertEvent } from '../wire/alert.js';

/**
 * Collects readings, windows, health samples and alert transitions into sink batches of at most `maxPoints`, and
 * hands each full batch (or, on the interval, each non-empty one) to `enqueue`, which appends it
 * to the log's outbox (sender-based logging). Memory is bounded by `maxPoints`: a full batch is
 * handed over synchronously, and the outbox keeps it on disk, not in the heap.
 *
 * A batch the log could not take (disk full: the log refuses appends while it repairs itself) is
 * kept and appended again, in order, with backoff; every later batch waits behind it, so a
 * corrected window never lands before the version it corrects. While the log is down little
 * arrives (ingest withholds acks, so no new readings are processed): health samples and idle
 * windows, merged into the last waiting batch up to `maxPoints`.
 *
 * A publish of several readings is kept as its payload bytes (PayloadReadings, see
 * addRecordReadings), which the sink thread decodes again: the gateway's thread copies bytes
 * instead of encoding every reading into the batch.
 *
 * Each batch says which ingest records' raw readings it completes (`covers`, from the offsets
 * given to addReadings). At startup the batches already in the log's tail are chained up from
 * the checkpoint (outgoingCoverage in gateway/log/outbox.ts) and resume() is told where the
 * chain ends: the replay passes over the raw readings of the records below it, which the store
 * gets from those batches.
 */
export interface SinkBatcherOptions {
  readonly maxPoints: number;
  readonly flushIntervalMs: number;
  /** Appends the batch to the outbox; resolves once it is durable. */
  readonly enqueue: (batch: OutgoingBatch) => Promise<unknown>;
  readonly logger: Logger;
  /**
   * Batches kept for a retry. Overflow policy: drop the oldest; from then on flush() rejects, so no
   * checkpoint is written past the dropped readings and the next start replays them from the log.
   * Default 1000.
   */
  readonly maxRetryBatches?: number;
  /** First retry delay after a failed append, doubling up to retryMaxMs. Default 100. */
  readonly retryInitialMs?: number;
  /** Default 5000. */
  readonly retryMaxMs?: number;
  /** While appends keep failing, at most one log line per this many ms. Default 10000. */
  readonly failureLogIntervalMs?: number;
  /**
   * Ingest's event-time bounds (ingest.maxPastAgeMs, ingest.maxFutureSkewMs): with them, a
   * publish of several readings is batched as its payload (addRecordReadings), which the sink
   * thread decodes again with these bounds, as the batch says. Absent: every reading is batched
   * as itself.
   */
  readonly payloadLimits?: PayloadLimits;
}

/** The publish a record's readings are every reading of (reading.durable's topic, payload and receivedAt). */
export interface RecordPayload {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly receivedAt: number;
}

interface Waiting {
  batch: OutgoingBatch;
  readonly done: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** A raw reading entry of a batch: a reading, or the readings of one publish as its payload. */
type RawEntry = Reading | PayloadReadings;

/**
 * A publish of at least this many readings is batched as its payload (PayloadReadings) when
 * its bytes are at most PAYLOAD_MAX_BYTES_PER_READING a reading. Below, the entry's own header
 * (arrival time, topic, count, length: ~12 bytes) outweighs what it saves; a wordier payload
 * (JSON) would hold a store outage in more of the log's bytes than the readings batched as
 * themselves.
 */
export const PAYLOAD_MIN_READINGS = 4;
/**
 * The batch codec takes about 21 bytes for a heart-rate reading and 43 for a bridge detection;
 * their protobuf batches about 17 and 28, their JSON about 52 and 116. A JSON reading has a
 * 13-digit `ts` and its keys: more than this.
 */
export const PAYLOAD_MAX_BYTES_PER_READING = 32;

function rawPointsOf(readings: readonly RawEntry[]): number {
  let n = 0;
  for (const r of readings) n += isPayloadReadings(r) ? r.count : 1;
  return n;
}

function pointsOf(b: OutgoingBatch): number {
  return rawPointsOf(b.readings) + b.windows.length + b.health.length + (b.alerts?.length ?? 0);
}

/**
 * The batch of these parts; `alerts` only when there are some, `covers` only when it is known,
 * `payloadLimits` only when some readings are payloads.
 */
function batchOf(readings: RawEntry[], windows: WindowResult[], health: HealthSample[], alerts: AlertEvent[], covers: BatchCovers | undefined, payloadLimits: PayloadLimits | undefined): OutgoingBatch {
  let batch: OutgoingBatch = alerts.length === 0 ? { readings, windows, health } : { readings, windows, health, alerts };
  if (covers !== undefined) batch = { ...batch, covers };
  return payloadLimits === undefined ? batch : { ...batch, payloadLimits };
}

function withoutCovers(b: OutgoingBatch): OutgoingBatch {
  const { covers: _, ...rest } = b;
  return rest;
}

export class SinkBatcher {
  private readings: RawEntry[] = [];
  /** The raw readings pending: a payload entry counts for each of its readings. */
  private rawPoints = 0;
  /**
   * The pending batch's payload bytes, copied here from what ingest read (nothing of a socket's
   * reads is held past the durable callback), allocated at its first payload for the room the
   * batch has left: at most PAYLOAD_MAX_BYTES_PER_READING a point. Each batch has its own, so it
   * is null exactly while the pending batch holds no payload entry.
   */
  private slab: Buffer | null = null;
  private slabUsed = 0;
  private windows: WindowResult[] = [];
  private health: HealthSample[] = [];
  private alerts: AlertEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private lastDurable: Promise<unknown> = Promise.resolve();
  private readonly waiting: Waiting[] = [];
  private retrying: Promise<void> | null = null;
  private stopSleeping = new AbortController();
  private closed = false;
  /** Set once a waiting batch was dropped (overflow): flush() rejects with it from then on. */
  private dropped: GatewayError | null = null;
  private lastFailureLog = -Infinity;
  private failedSince = 0;
  /** Every raw reading of the ingest records below this offset is in a batch handed over or pending. */
  private coveredBelow = 0;
  /** coveredBelow when the pending batch began: its covers.from. */
  private pendingFrom = 0;
  /** Set by resume(): replayed records below it have their raw readings in the log's batches. */
  private resumedBelow = 0;
  private passedOver = 0;
  /** Set once a record came below what was covered already (see cover()). */
  private unordered = false;

  constructor(private readonly options: SinkBatcherOptions) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush().catch((err: unknown) => this.logFailure(err, 'sink batch flush failed')), this.options.flushIntervalMs);
    this.timer.unref();
  }

  get pendingPoints(): number {
    return this.rawPoints + this.windows.length + this.health.length + this.alerts.length;
  }

  /** Batches waiting for the log to take them again. */
  get waitingBatches(): number {
    return this.waiting.length;
  }

  /**
   * Where the batches already in the log end (outgoingCoverage, at startup, before the replay):
   * the batches from now on continue their chain, and a replayed record below it is passed over
   * by addRecordReadings.
   */
  resume(storedBelow: number): void {
    if (this.pendingPoints > 0 || this.coveredBelow > 0) throw new Error('SinkBatcher.resume() must come before anything is batched');
    this.resumedBelow = storedBelow;
    this.coveredBelow = storedBelow;
    this.pendingFrom = storedBelow;
  }

  /** Replayed records passed over since the start, their raw readings already in the log's batches. */
  get passedOverRecords(): number {
    return this.passedOver;
  }

  addReading(r: Reading): void {
    this.readings.push(r);
    this.rawPoints++;
    if (this.pendingPoints >= this.options.maxPoints) void this.flush();
  }

  /**
   * The readings of one publish: as addReading() on each (a batch ends at the reading that
   * fills it), pushed in stretches up to that reading instead of checking after each one.
   * `offset`: the log offset of their ingest record (records come in the log's order); the
   * batch that takes the last of them covers it.
   */
  addReadings(rs: readonly Reading[], offset = -1): void {
    const max = this.options.maxPoints;
    let i = 0;
    while (i < rs.length) {
      const stop = Math.min(rs.length, i + Math.max(1, max - this.pendingPoints));
      const readings = this.readings;
      this.rawPoints += stop - i;
      for (; i < stop; i++) readings.push(rs[i]!);
      if (i === rs.length && offset >= 0) this.cover(offset);
      if (this.pendingPoints >= max) void this.flush();
    }
  }

  /**
   * The batch that takes a record's last reading covers it. Records come in the log's order (the
   * log calls back in offset order); one below what is covered already would make the batches'
   * ranges untrue, so from then on no batch says what it covers.
   */
  private cover(offset: number): void {
    if (offset >= this.coveredBelow) {
      this.coveredBelow = offset + 1;
    } else if (!this.unordered) {
      this.unordered = true;
      this.options.logger.error({ offset, coveredBelow: this.coveredBelow }, 'raw readings came out of log order; store batches no longer say which records they cover (a replay batches them again)');
    }
  }

  /**
   * The raw readings of one durable ingest record (reading.durable): batched, unless it is
   * replayed from below resume()'s point, where the log's batches hold them already.
   * `source`: the publish they are every reading of (see reading.durable). With payloadLimits,
   * a publish of at least PAYLOAD_MIN_READINGS readings, at most PAYLOAD_MAX_BYTES_PER_READING
   * bytes a reading and no more than a batch holds, is batched as a copy of its payload, whole,
   * in one batch.
   */
  addRecordReadings(rs: readonly Reading[], offset: number, replay: boolean, source: RecordPayload | null = null): void {
    if (replay && offset < this.resumedBelow) {
      this.passedOver++;
      return;
    }
    const n = rs.length;
    const max = this.options.maxPoints;
    if (source === null || this.options.payloadLimits === undefined || n < PAYLOAD_MIN_READINGS || n > max || source.payload.length > n * PAYLOAD_MAX_BYTES_PER_READING) {
      this.addReadings(rs, offset);
      return;
    }
    // Not split across batches: the batch it does not fit in goes first.
    if (this.pendingPoints + n > max) void this.flush();
    this.readings.push({ receivedAt: source.receivedAt, topic: source.topic, payload: this.copyPayload(source.payload), count: n });
    this.rawPoints += n;
    if (offset >= 0) this.cover(offset);
    if (this.pendingPoints >= max) void this.flush();
  }

  /** The payload's bytes in the pending batch's slab (room for every point it has left). */
  private copyPayload(payload: Uint8Array): Buffer {
    let slab = this.slab;
    if (slab === null || this.slabUsed + payload.length > slab.length) {
      slab = this.slab = Buffer.allocUnsafeSlow(Math.max(payload.length, (this.options.maxPoints - this.pendingPoints) * PAYLOAD_MAX_BYTES_PER_READING));
      this.slabUsed = 0;
    }
    const start = this.slabUsed;
    slab.set(payload, start);
    this.slabUsed = start + payload.length;
    return slab.subarray(start, this.slabUsed);
  }

  addWindow(w: WindowResult): void {
    this.windows.push(w);
    if (this.pendingPoints >= this.options.maxPoints) void this.flush();
  }

  addHealth(h: HealthSample): void {
    this.health.push(h);
  }

  /** An alert transition with the offset of its log record. */
  addAlert(a: AlertEvent): void {
    this.alerts.push(a);
    if (this.pendingPoints >= this.options.maxPoints) void this.flush();
  }

  /**
   * Hands the pending batch to the outbox. The append itself happens synchronously (so a
   * checkpoint taken right after covers it); the promise settles when it, and every batch
   * before it, is durable: after a failed append, once the retry got it into the log.
   */
  flush(): Promise<unknown> {
    if (this.pendingPoints > 0) {
      // After a drop no batch says what it covers: a chain through the dropped one would be wrong.
      const covers = this.dropped === null && !this.unordered ? { from: this.pendingFrom, below: this.coveredBelow } : undefined;
      const batch = batchOf(this.readings, this.windows, this.health, this.alerts, covers, this.slab !== null ? this.options.payloadLimits : undefined);
      this.pendingFrom = this.coveredBelow;
      this.readings = [];
      this.rawPoints = 0;
      this.slab = null;
      this.windows = [];
      this.health = [];
      this.alerts = [];
      const durable =
        this.waiting.length > 0 || this.retrying !== null
          ? this.wait(batch)
          : this.options.enqueue(batch).then(
              () => undefined,
              (err: unknown) => {
                this.logFailure(err, 'sink batch append failed; kept and retried in order');
                return this.wait(batch);
              },
            );
      this.lastDurable = Promise.all([this.lastDurable, durable]);
    }
    const result = this.dropped === null ? this.lastDurable : this.lastDurable.then(() => Promise.reject(this.dropped));
    // Marked handled here; callers that await it still see a rejection.
    result.catch(() => undefined);
    return result;
  }

  /** Stops the interval and flushes; a batch the log still refuses gets one last try, then the promise rejects. */
  close(): Promise<unknown> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.closed = true;
    this.stopSleeping.abort();
    return this.flush();
  }

  /** Queues a batch behind the waiting ones (merged into the last while it has room). */
  private wait(batch: OutgoingBatch): Promise<void> {
    if (this.waiting.length === 0) this.failedSince = Date.now();
    const last = this.waiting[this.waiting.length - 1];
    // The last entry is not being appended unless it is also the first (the one in flight).
    if (last !== undefined && (this.waiting.length > 1 || this.retrying === null) && pointsOf(last.batch) + pointsOf(batch) <= this.options.maxPoints) {
      last.batch = batchOf(
        last.batch.readings.concat(batch.readings),
        last.batch.windows.concat(batch.windows),
        last.batch.health.concat(batch.health),
        (last.batch.alerts ?? []).concat(batch.alerts ?? []),
        // Consecutive batches: the first's start, the second's end.
        last.batch.covers === undefined || batch.covers === undefined ? undefined : { from: last.batch.covers.from, below: batch.covers.below },
        last.batch.payloadLimits ?? batch.payloadLimits,
      );
      return last.done;
    }
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.waiting.push({ batch, done, resolve, reject });
    const max = this.options.maxRetryBatches ?? 1000;
    if (this.waiting.length > max) {
      const at = this.retrying === null ? 0 : 1;
      const oldest = this.waiting.splice(at, 1)[0]!;
      // The batches behind it end the stored chain (SinkBatch.covers): the next start replays the dropped readings.
      for (let i = at; i < this.waiting.length; i++) this.waiting[i]!.batch = withoutCovers(this.waiting[i]!.batch);
      this.dropped ??= new GatewayError('GW_ERR_LOG_IO', `more than ${max} store batches waited for the log; the oldest were dropped (their readings are replayed from the log at the next start)`);
      this.options.logger.error({ waiting: this.waiting.length }, this.dropped.message);
      oldest.reject(this.dropped);
    }
    this.retrying ??= this.retryWaiting().finally(() => {
      this.retrying = null;
    });
    return done;
  }

  private async retryWaiting(): Promise<void> {
    const initial = this.options.retryInitialMs ?? 100;
    const max = this.options.retryMaxMs ?? 5000;
    let attempt = 0;
    while (this.waiting.length > 0) {
      if (attempt > 0) await this.sleep(Math.min(max, initial * 2 ** Math.min(attempt - 1, 30)));
      const head = this.waiting[0]!;
      try {
        await this.options.enqueue(head.batch);
        this.waiting.shift();
        head.resolve();
        attempt = 0;
      } catch (err) {
        attempt++;
        if (this.closed && attempt > 1) {
          // Shutting down: the readings are in the log; the next start replays them.
          for (const w of this.waiting.splice(0)) w.reject(err);
          return;
        }
        this.logFailure(err, 'sink batches still cannot be appended; retrying');
      }
    }
    this.options.logger.info({ waitedMs: Date.now() - this.failedSince }, 'sink batches appended again');
    this.lastFailureLog = -Infinity;
  }

  private sleep(ms: number): Promise<void> {
    return sleepUnlessAborted(ms, this.stopSleeping.signal);
  }

  /** One line per failureLogIntervalMs at most, with the error's message (its stack only the first time). */
  private logFailure(err: unknown, message: string): void {
    const now = Date.now();
    const first = this.lastFailureLog === -Infinity;
    if (!first && now - this.lastFailureLog < (this.options.failureLogIntervalMs ?? 10_000)) return;
    this.lastFailureLog = now;
    if (first) this.options.logger.error({ err, waiting: this.waiting.length }, message);
    else this.options.logger.warn({ error: (err as Error)?.message ?? String(err), waiting: this.waiting.length }, message);
  }
}

/**
 * Feeds the batcher from the event bus: every emitted window (live and replayed: the store's
 * writes are idempotent), every alert transition (also one told again after a restart, `logged`:
 * it lands on the same row/point, identity (id, state), with the offset of its first record), and
 * with `writeRawReadings` every reading that passed dedup. A transition the log refused (offset
 * -1) is not stored: it reached no one else either. A replayed record whose raw readings the
 * log's batches hold already is passed over (SinkBatcher.resume). Returns the function that
 * unsubscribes.
 */
export function subscribeSinkBatcher(events: EventBus, batcher: SinkBatcher, options: { readonly writeRawReadings: boolean }): () => void {
  const off = [
    events.on('window.emitted', (e) => batcher.addWindow(e.window)),
    events.on('alert.transition', (e) => {
      if (e.offset >= 0) batcher.addAlert(toAlertEvent(e.transition, e.offset));
    }),
  ];
  if (options.writeRawReadings) {
    off.push(
      events.on('reading.durable', (e) =>
        batcher.addRecordReadings(e.readings, e.offset, e.replay, e.payload == null || e.topic == null ? null : { topic: e.topic, payload: e.payload, receivedAt: e.receivedAt }),
      ),
    );
  }
  return () => {
    for (const f of off) f();
  };
}
