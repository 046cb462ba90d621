/**
 * Readings of an ingest record: its payload decoded and validated as the live path did. The
 * record's layout is the log's (gateway/log/ingest-record-format.ts).
 */
import type { Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import { decodeIngestRecord, receivedAtOfIngestRecord } from '../log/ingest-record-format.js';
import type { PayloadDecoder } from './payload-decoder.js';
import { parseSensorTopic } from './topic.js';
import { decodeSparkplugRecord, isSparkplugTopic } from './sparkplug-record.js';

/**
 * The valid readings of one ingest record, decoded as the live path did (same receivedAt); none
 * when its topic is not a sensor topic of a known kind (it was rejected live, never acked as one).
 */
export function readingsOfIngestRecord(payload: Buffer, kinds: KindRegistry, decoder: PayloadDecoder): readonly Reading[] {
  const rec = decodeIngestRecord(payload);
  if (isSparkplugTopic(rec.topic)) return decodeSparkplugRecord(rec.payload);
  const topic = parseSensorTopic(rec.topic);
  const kind = topic === null ? undefined : kinds.get(topic.kind);
  if (topic === null || kind === undefined) return [];
  return decoder.decode(kind, topic.deviceId, rec.payload, rec.receivedAt).readings;
}

/** How recovery reads ingest records: their readings as the live path decoded them, and their receivedAt. */
export function createIngestRecordReader(kinds: KindRegistry, decoder: PayloadDecoder): { readings(payload: Buffer): readonly Reading[]; receivedAt(payload: Buffer): number } {
  return {
    readings: (payload) => readingsOfIngestRecord(payload, kinds, decoder),
    receivedAt: receivedAtOfIngestRecord,
  };
}
