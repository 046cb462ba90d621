/**
 * Payload layout of an ingest record (RECORD_TYPES.ingest, receiver-based logging). The raw MQTT
 * payload is kept as received, so replay decodes and validates exactly as the live path did
 * (validation uses `receivedAt`, not the replay's clock).
 *
 *   ingest:      u8 version=1 | f64 receivedAt | u16 topicLength | topic utf8 | payload
 */
import { f64le, putF64le } from './record-format.js';
import type { RecordBody } from './types.js';

const VERSION = 1;

export interface IngestRecord {
  readonly receivedAt: number;
  readonly topic: string;
  readonly payload: Buffer;
}

/** Topics whose UTF-8 bytes are remembered (a device publishes on one topic again and again); cleared when full. */
const TOPIC_BYTES_ENTRIES = 4096;
/** Longer topics are encoded each time: the memo holds at most TOPIC_BYTES_ENTRIES short ones. */
const TOPIC_BYTES_MAX_CHARS = 160;
const topicBytesMemo = new Map<string, Buffer>();

/** The topic's UTF-8 bytes; encoding them cost ~0.5 µs a publish (Buffer.write and byteLength), a lookup a fraction. */
function topicBytes(topic: string): Buffer {
  const hit = topicBytesMemo.get(topic);
  if (hit !== undefined) return hit;
  const bytes = Buffer.from(topic, 'utf8');
  if (topic.length <= TOPIC_BYTES_MAX_CHARS) {
    if (topicBytesMemo.size >= TOPIC_BYTES_ENTRIES) topicBytesMemo.clear();
    topicBytesMemo.set(topic, bytes);
  }
  return bytes;
}

/** An ingest record written into a buffer by the log itself (one object, refilled per append). */
class IngestRecordBody implements RecordBody {
  length = 0;
  private receivedAt = 0;
  private topic: Buffer = EMPTY;
  private payload: Buffer = EMPTY;

  fill(receivedAt: number, topic: Buffer, payload: Buffer): this {
    // The length field has 16 bits. A topic string may encode to more UTF-8 bytes than the
    // publish carried (each invalid byte becomes U+FFFD, 3 bytes): refused, never truncated.
    if (topic.length > MAX_TOPIC_BYTES) throw new RangeError(`topic of ${topic.length} UTF-8 bytes exceeds an ingest record's ${MAX_TOPIC_BYTES}`);
    this.receivedAt = receivedAt;
    this.topic = topic;
    this.payload = payload;
    this.length = INGEST_TOPIC_START + topic.length + payload.length;
    return this;
  }

  writeInto(buf: Buffer, pos: number): void {
    const topicLen = this.topic.length;
    buf[pos] = VERSION;
    putF64le(buf, this.receivedAt, pos + 1);
    buf[pos + 9] = topicLen & 0xff;
    buf[pos + 10] = topicLen >>> 8;
    // TypedArray set: no argument checks or native call per copy, unlike Buffer.write / copy.
    buf.set(this.topic, pos + INGEST_TOPIC_START);
    buf.set(this.payload, pos + INGEST_TOPIC_START + topicLen);
    // Nothing of the publish is held past the append.
    this.topic = EMPTY;
    this.payload = EMPTY;
  }
}

const EMPTY = Buffer.alloc(0);
const MAX_TOPIC_BYTES = 0xffff;
const body = new IngestRecordBody();

/**
 * The ingest record of a publish as a body for MessageLog.append, which writes it straight into
 * its write buffer: no Buffer per publish to build, copy and collect (~0.3 µs an append less in
 * bench/append-bench.ts). Valid until the next call: pass it to append at once.
 */
export function ingestRecordBody(receivedAt: number, topic: string, payload: Buffer): RecordBody {
  return body.fill(receivedAt, topicBytes(topic), payload);
}

export function encodeIngestRecord(receivedAt: number, topic: string, payload: Buffer): Buffer {
  const b = ingestRecordBody(receivedAt, topic, payload);
  const buf = Buffer.allocUnsafe(b.length);
  b.writeInto(buf, 0);
  return buf;
}

export function decodeIngestRecord(buf: Buffer): IngestRecord {
  const topicEnd = topicEndOfIngestRecord(buf);
  return { receivedAt: buf.readDoubleLE(1), topic: buf.toString('utf8', INGEST_TOPIC_START, topicEnd), payload: buf.subarray(topicEnd) };
}

/** Where the topic's bytes of an ingest record begin. */
export const INGEST_TOPIC_START = 11;

/**
 * Where the topic's bytes of an ingest record end (and its payload begins), without decoding
 * either: replay looks the topic up by its bytes.
 */
export function topicEndOfIngestRecord(buf: Buffer): number {
  checkHeader(buf);
  return INGEST_TOPIC_START + (buf[9]! | (buf[10]! << 8));
}

/** The receivedAt of an ingest record, without decoding the rest (replay passes it to the pipeline). */
export function receivedAtOfIngestRecord(buf: Buffer): number {
  checkHeader(buf);
  return f64le(buf, 1);
}

function checkHeader(buf: Buffer): void {
  if (buf[0] !== VERSION) throw new Error(`unknown ingest record version ${String(buf[0])}`);
  if (buf.length < INGEST_TOPIC_START) throw new Error(`ingest record of ${buf.length} bytes is shorter than its ${INGEST_TOPIC_START}-byte header`);
}

