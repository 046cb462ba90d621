/**
 * Entry of the sink thread (started by gateway/sinks/sink-thread.ts): the thread's composition
 * root, as main.ts is the gateway's. It serves the sink's requests (sinks/sink-worker.ts) with
 * ingest's payload reader, which decodes the store batches' payload entries (PayloadReadings)
 * again: the same kinds, the arrival time the publish had and the event-time bounds the batch
 * says ingest applied, so a payload gives the readings it gave ingest. Nothing imports this module.
 */
import { createPayloadReader } from './ingest/ingest-record.js';
import { createKindRegistry } from './kinds/registry.js';
import { serveSinkThread } from './sinks/sink-worker.js';

/** A payload that decodes to other readings than ingest had: one log line per this many ms at most (each is counted). */
const MISMATCH_LOG_MS = 10_000;

serveSinkThread(({ data, logger, mismatch }) => {
  const kinds = createKindRegistry(data.kinds);
  const read = createPayloadReader(kinds);
  let loggedAt = -Infinity;
  return (receivedAt, topic, payload, count, limits) => {
    const readings = read(topic, payload, receivedAt, limits);
    if (readings.length !== count) {
      // Only kinds changed (or removed) since the batch was made do this: the bytes are what the
      // gateway has of those readings, so what they decode to now is stored.
      mismatch(count, readings.length);
      const now = Date.now();
      if (now - loggedAt >= MISMATCH_LOG_MS) {
        loggedAt = now;
        logger.warn({ topic, receivedAt, batched: count, decoded: readings.length }, 'a store batch payload decoded to other readings than ingest had (its kind changed since); storing what it decodes to');
      }
    }
    return readings;
  };
});
