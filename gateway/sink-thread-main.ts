/**
 * Entry of the sink thread (started by gateway/sinks/sink-thread.ts): the thread's composition
 * root, as main.ts is the gateway's. It serves the sink's requests (sinks/sink-worker.ts) with the
 * payload decoder of ingest, which the store batches' payload entries (PayloadReadings) are
 * decoded with again: the same kinds and the same event-time bounds, against the same arrival
 * time, so a payload gives the readings it gave ingest. Nothing imports this module.
 */
import { createPayloadDecoder } from './ingest/payload-decoder.js';
import { readingsOfPayload } from './ingest/ingest-record.js';
import { createTopicRouter } from './ingest/topic-router.js';
import { createKindRegistry } from './kinds/registry.js';
import type { SinkThreadData } from './sinks/sink-thread-protocol.js';
import { serveSinkThread } from './sinks/sink-worker.js';

/** A payload that decodes to other readings than ingest had: one line per this many ms at most. */
const MISMATCH_LOG_MS = 10_000;

serveSinkThread((data: SinkThreadData, logger) => {
  const decoding = data.decoding;
  // Without the limits no payload entry is decoded: a batch holding one is refused as corrupt.
  if (decoding === null) return undefined;
  const kinds = createKindRegistry(data.kinds);
  const decoder = createPayloadDecoder(kinds, decoding);
  // Payload entries come from native topics only (sensors/<kind>/<deviceId>).
  const router = createTopicRouter({ kinds });
  let loggedAt = -Infinity;
  return (receivedAt, topic, payload, count) => {
    const readings = readingsOfPayload(topic, payload, receivedAt, kinds, decoder, router);
    if (readings.length !== count) {
      // Only a change of the kinds or of ingest's bounds since the batch was made does this.
      const now = Date.now();
      if (now - loggedAt >= MISMATCH_LOG_MS) {
        loggedAt = now;
        logger.warn({ topic, receivedAt, batched: count, decoded: readings.length }, 'a store batch payload decoded to other readings than ingest had (kinds or ingest limits changed since); storing what it decodes to');
      }
    }
    return readings;
  };
});
