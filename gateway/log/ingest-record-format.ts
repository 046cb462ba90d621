/**
 * Payload layout of an ingest record (RECORD_TYPES.ingest, receiver-based logging). The raw MQTT
 * payload is kept as received, so replay decodes and validates exactly as the live path did
 * (validation uses `receivedAt`, not the replay's clock).
 *
 *   ingest:      u8 version=1 | f64 receivedAt | u16 topicLength | topic utf8 | payload
 */
const VERSION = 1;

export interface IngestRecord {
  readonly receivedAt: number;
  readonly topic: string;
  readonly payload: Buffer;
}

export function encodeIngestRecord(receivedAt: number, topic: string, payload: Buffer): Buffer {
  const topicLen = Buffer.byteLength(topic);
  const buf = Buffer.allocUnsafe(1 + 8 + 2 + topicLen + payload.length);
  buf[0] = VERSION;
  buf.writeDoubleLE(receivedAt, 1);
  buf.writeUInt16LE(topicLen, 9);
  buf.write(topic, 11, topicLen, 'utf8');
  payload.copy(buf, 11 + topicLen);
  return buf;
}

export function decodeIngestRecord(buf: Buffer): IngestRecord {
  if (buf[0] !== VERSION) throw new Error(`unknown ingest record version ${String(buf[0])}`);
  const receivedAt = buf.readDoubleLE(1);
  const topicLen = buf.readUInt16LE(9);
  return { receivedAt, topic: buf.toString('utf8', 11, 11 + topicLen), payload: buf.subarray(11 + topicLen) };
}

/** The receivedAt of an ingest record, without decoding the rest (replay passes it to the pipeline). */
export function receivedAtOfIngestRecord(buf: Buffer): number {
  if (buf[0] !== VERSION) throw new Error(`unknown ingest record version ${String(buf[0])}`);
  return buf.readDoubleLE(1);
}

