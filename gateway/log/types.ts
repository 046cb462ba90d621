/**
 * Contract of the hybrid message log (HML). Receiver-based: every accepted publish is appended
 * BEFORE it is processed. Sender-based: every outgoing batch is appended BEFORE it is sent and an
 * ack record is appended after the receiver confirmed. One store for both.
 */
export const RECORD_TYPES = {
  /** A publish accepted by ingest: see encodeIngestRecord in gateway/ingest/ingest-record.ts. */
  ingest: 1,
  /** A rejected publish kept for inspection: reason + topic + payload (dead letter). */
  deadLetter: 2,
  /** An outgoing batch for a destination (sender-based logging). */
  outgoing: 3,
  /** Acknowledgement of an outgoing record by its destination. */
  outgoingAck: 4,
  /** An alert transition (FIRING/RESOLVED), JSON of gateway/wire/alert.ts: appended before anyone is told. */
  alert: 5,
  /** An emitted window result (first emission or correction), JSON of gateway/wire/window.ts. */
  window: 6,
  /**
   * A device's status told by the device or its edge node (a Sparkplug B death or birth, an MQTT
   * will): JSON { v: 1, kind, deviceId, status: 'offline' | 'online', reason, at }.
   */
  deviceStatus: 7,
} as const;
export type RecordType = (typeof RECORD_TYPES)[keyof typeof RECORD_TYPES];

export interface LogRecord {
  /** Monotonic offset, unique for the life of the log (survives restarts and retention). */
  readonly offset: number;
  readonly type: RecordType;
  /** Wall-clock time of the append, ms since epoch. */
  readonly timestamp: number;
  readonly payload: Buffer;
}

/** Called once the record is durable (fdatasync'd), or with the error that prevented it. */
export type DurableCallback = (err: Error | null, offset: number) => void;

/**
 * A payload the log writes straight into its write buffer, instead of a Buffer built first and
 * copied: the ingest path appends one per publish (see ingestRecordBody). append() writes it at
 * once and keeps no reference, so one body object may be refilled for every append.
 */
export interface RecordBody {
  /** Bytes writeInto writes. */
  readonly length: number;
  /** Writes exactly `length` bytes at buf[pos] (the log made room for them). */
  writeInto(buf: Buffer, pos: number): void;
}

export interface MessageLog {
  /** Open, recover (truncate a torn tail, refuse mid-log corruption) and start group commit. */
  start(): Promise<void>;
  /**
   * Appends a record and returns its offset at once. `onDurable` runs when the group commit
   * that covers it has been fdatasync'd. Never blocks the event loop on disk, and never throws:
   * a record the log refuses (closed, failed, over its size limit) returns -1 and `onDurable`
   * gets the error on the next tick.
   */
  append(type: RecordType, payload: Uint8Array | RecordBody, onDurable?: DurableCallback): number;
  /** Promise form of append. */
  appendDurable(type: RecordType, payload: Uint8Array): Promise<number>;
  /** Offset the next append will get. */
  readonly nextOffset: number;
  /** First offset still present on disk (after retention). */
  readonly firstOffset: number;
  /**
   * Reads records [from, to) in order (the newest from memory, older ones from disk); `to`
   * defaults to the end at call time. Only durable records are handed out (the read waits for the
   * group commit covering `to - 1`), so an offset seen by a reader is never taken back by a crash.
   * Payloads are views of a read buffer shared with other readers: copy one to keep it beyond the
   * iteration, and never write to it.
   */
  read(from: number, to?: number): AsyncIterable<LogRecord>;
  /** True while the disk high-water mark is exceeded: ingest must withhold acks. */
  readonly backpressured: boolean;
  /** Idempotent: flushes, fsyncs and closes segments. */
  close(): Promise<void>;
}

/**
 * What a follower of the log gets, in offset order:
 * - `record`: a durable record (its payload is a view of a read buffer: copy it to keep it long);
 * - `earliest`: only ever the first item, when `from` is below the log's first offset (retention
 *   deleted those records before the read began): the records from `firstOffset` follow. An SSE
 *   hub resuming from a Last-Event-ID that old sends its `earliest` notice on this and goes on.
 * - `gap`: records [from, to) were asked for but are gone: deleted by retention while the reader
 *   was on its way to them (`retention`), or skipped as damaged at startup with log.skipCorrupt
 *   (`damaged`). The record at `to` (or a later one) follows. Never skipped silently.
 */
export type TailItem =
  | { readonly kind: 'record'; readonly record: LogRecord }
  | { readonly kind: 'earliest'; readonly requested: number; readonly firstOffset: number }
  | { readonly kind: 'gap'; readonly from: number; readonly to: number; readonly reason: 'retention' | 'damaged' };
