/**
 * Readings of an ingest record: its payload decoded and validated as the live path did. The
 * record's layout is the log's (gateway/log/ingest-record-format.ts).
 */
import type { Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import { decodeIngestRecord, receivedAtOfIngestRecord } from '../log/ingest-record-format.js';
import type { PayloadDecoder } from './payload-decoder.js';
import { decodeSparkplugRecord, isSparkplugTopic } from './sparkplug-record.js';
import { createTopicRouter, type TopicRouter } from './topic-router.js';

/**
 * The valid readings of one ingest record, decoded as the live path did (same receivedAt, same
 * topic routing); none when its topic is no topic of a known kind (it was rejected live, never
 * acked as one).
 */
export function readingsOfIngestRecord(payload: Buffer, kinds: KindRegistry, decoder: PayloadDecoder, router: TopicRouter = createTopicRouter({ kinds })): readonly Reading[] {
  const rec = decodeIngestRecord(payload);
  if (isSparkplugTopic(rec.topic)) return decodeSparkplugRecord(rec.payload);
  const route = router.route(rec.topic);
  const kind = route === null ? undefined : kinds.get(route.kind);
  if (route === null || kind === undefined) return [];
  const result = route.mapping === null ? decoder.decode(kind, route.deviceId, rec.payload, rec.receivedAt) : route.mapping.decode(kind, route.deviceId, rec.payload, rec.receivedAt);
  return result.readings;
}

/** How recovery reads ingest records: their readings as the live path decoded them, and their receivedAt. */
export function createIngestRecordReader(kinds: KindRegistry, decoder: PayloadDecoder, router: TopicRouter = createTopicRouter({ kinds })): { readings(payload: Buffer): readonly Reading[]; receivedAt(payload: Buffer): number } {
  return {
    readings: (payload) => readingsOfIngestRecord(payload, kinds, decoder, router),
    receivedAt: receivedAtOfIngestRecord,
  };
}
