/**
 * Payload layout of a dead-letter record (RECORD_TYPES.deadLetter): what ingest refused, a late
 * reading, or an outgoing record its destination refused for good.
 *
 *   dead letter: u8 version=2 | f64 at | u8 reasonLength | reason | u16 topicLength | topic
 *                | u32 detailLength | detail utf8 | u32 payloadBytes | payload prefix
 *                (version 1, still read, has no payloadBytes and the whole payload)
 *
 * A dead letter keeps a bounded prefix of what a device sent (its full length is recorded): a
 * rejected publish may be as large as the MQTT packet bound, far above what the log should hold
 * for something that was refused.
 */
export interface DeadLetterRecord {
  readonly at: number;
  readonly reason: string;
  readonly topic: string;
  readonly detail: string;
  /** What is kept of the payload: a prefix of at most the encoder's bound. */
  readonly payload: Buffer;
  /** Length of the payload as it was sent; more than `payload.length` when cut. */
  readonly payloadBytes?: number;
}

/** Longest detail text kept in a dead letter (the detail is the gateway's, but may quote a topic). */
const DEAD_LETTER_DETAIL_BYTES = 4096;

/** `keepPayloadBytes` bounds the payload prefix kept; by default the payload is kept whole. */
export function encodeDeadLetter(d: DeadLetterRecord, keepPayloadBytes = Number.POSITIVE_INFINITY): Buffer {
  const reason = Buffer.from(d.reason.slice(0, 255), 'utf8').subarray(0, 255);
  const topic = Buffer.from(d.topic, 'utf8').subarray(0, 65535);
  const detail = Buffer.from(d.detail, 'utf8').subarray(0, DEAD_LETTER_DETAIL_BYTES);
  const payloadBytes = d.payloadBytes ?? d.payload.length;
  const kept = d.payload.subarray(0, Math.min(d.payload.length, keepPayloadBytes));
  const buf = Buffer.allocUnsafe(1 + 8 + 1 + reason.length + 2 + topic.length + 4 + detail.length + 4 + kept.length);
  let o = 0;
  buf[o++] = DEAD_LETTER_VERSION;
  o = buf.writeDoubleLE(d.at, o);
  o = buf.writeUInt8(reason.length, o);
  o += reason.copy(buf, o);
  o = buf.writeUInt16LE(topic.length, o);
  o += topic.copy(buf, o);
  o = buf.writeUInt32LE(detail.length, o);
  o += detail.copy(buf, o);
  o = buf.writeUInt32LE(Math.min(payloadBytes, 0xffff_ffff), o);
  kept.copy(buf, o);
  return buf;
}

const DEAD_LETTER_VERSION = 2;

export function decodeDeadLetter(buf: Buffer): DeadLetterRecord {
  const version = buf[0];
  if (version !== 1 && version !== DEAD_LETTER_VERSION) throw new Error(`unknown dead-letter record version ${String(version)}`);
  let o = 1;
  const at = buf.readDoubleLE(o);
  o += 8;
  const rl = buf.readUInt8(o++);
  const reason = buf.toString('utf8', o, o + rl);
  o += rl;
  const tl = buf.readUInt16LE(o);
  o += 2;
  const topic = buf.toString('utf8', o, o + tl);
  o += tl;
  const dl = buf.readUInt32LE(o);
  o += 4;
  const detail = buf.toString('utf8', o, o + dl);
  o += dl;
  if (version === 1) return { at, reason, topic, detail, payload: buf.subarray(o), payloadBytes: buf.length - o };
  const payloadBytes = buf.readUInt32LE(o);
  o += 4;
  return { at, reason, topic, detail, payload: buf.subarray(o), payloadBytes };
}
