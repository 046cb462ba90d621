/**
 * Readings of an ingest record: its payload decoded and validated as the live path did. The
 * record's layout is the log's (gateway/log/ingest-record-format.ts).
 */
import type { KindDescriptor, Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import { decodeIngestRecord, INGEST_TOPIC_START, receivedAtOfIngestRecord, topicEndOfIngestRecord } from '../log/ingest-record-format.js';
import type { IngestConfig } from '../config/config.js';
import { createPayloadDecoder, type PayloadDecoder } from './payload-decoder.js';
import { decodeSparkplugRecord, isSparkplugTopic } from './sparkplug-record.js';
import { createTopicRouter, type TopicRoute, type TopicRouter } from './topic-router.js';
import { topicHash } from './topic.js';

/**
 * The valid readings of one ingest record, decoded as the live path did (same receivedAt, same
 * topic routing); none when its topic is no topic of a known kind (it was rejected live, never
 * acked as one).
 */
export function readingsOfIngestRecord(payload: Buffer, kinds: KindRegistry, decoder: PayloadDecoder, router: TopicRouter = createTopicRouter({ kinds })): readonly Reading[] {
  const rec = decodeIngestRecord(payload);
  return readingsOfBody(topicInfo(rec.topic, kinds, router), rec.payload, 0, rec.receivedAt, decoder);
}

/** Payload decoders kept by a payload reader, one per pair of limits (a gateway has one; a restart with other limits adds one). */
const PAYLOAD_DECODERS_MAX = 8;

/**
 * What the sink thread decodes a store batch's payload entries with (PayloadReadings): the
 * valid readings of one publish's payload on a native topic (`sensors/<kind>/<deviceId>`), as
 * ingest decoded it, received at `receivedAt`, with the event-time bounds `limits` the batch says
 * ingest applied. Any other topic (a payload entry is never of a mapped source or Sparkplug B)
 * gives no readings.
 */
export function createPayloadReader(kinds: KindRegistry): (topic: string, payload: Buffer, receivedAt: number, limits: Pick<IngestConfig, 'maxPastAgeMs' | 'maxFutureSkewMs'>) => readonly Reading[] {
  const router = createTopicRouter({ kinds });
  const decoders = new Map<string, PayloadDecoder>();
  return (topic, payload, receivedAt, limits) => {
    const key = `${limits.maxPastAgeMs}/${limits.maxFutureSkewMs}`;
    let decoder = decoders.get(key);
    if (decoder === undefined) {
      if (decoders.size >= PAYLOAD_DECODERS_MAX) decoders.clear();
      decoder = createPayloadDecoder(kinds, { maxPastAgeMs: limits.maxPastAgeMs, maxFutureSkewMs: limits.maxFutureSkewMs });
      decoders.set(key, decoder);
    }
    const route = router.route(topic);
    if (route === null || route.mapping !== null) return [];
    const kind = kinds.get(route.kind);
    return kind === undefined ? [] : decoder.decode(kind, route.deviceId, payload, receivedAt).readings;
  };
}

/** What a record's topic says of its body: Sparkplug B, or a route and its kind (null / undefined: no known kind). */
interface TopicInfo {
  readonly sparkplug: boolean;
  readonly route: TopicRoute | null;
  readonly kind: KindDescriptor | undefined;
}

function topicInfo(topic: string, kinds: KindRegistry, router: TopicRouter): TopicInfo {
  const sparkplug = isSparkplugTopic(topic);
  const route = sparkplug ? null : router.route(topic);
  return { sparkplug, route, kind: route === null ? undefined : kinds.get(route.kind) };
}

/** The readings of a record's body (the MQTT payload: `buf` from `start` on) once its topic is known. */
function readingsOfBody(t: TopicInfo, buf: Buffer, start: number, receivedAt: number, decoder: PayloadDecoder): readonly Reading[] {
  // The payload decoder reads the body in place; the others get it as a Buffer of its own.
  if (t.sparkplug) return decodeSparkplugRecord(bodyOf(buf, start));
  const { route, kind } = t;
  if (route === null || kind === undefined) return [];
  if (route.mapping === null) return decoder.decode(kind, route.deviceId, buf, receivedAt, start).readings;
  return route.mapping.decode(kind, route.deviceId, bodyOf(buf, start), receivedAt).readings;
}

function bodyOf(buf: Buffer, start: number): Buffer {
  return start === 0 ? buf : buf.subarray(start);
}

/** What a topic is, found once for all the records that carry it. */
interface TopicEntry extends TopicInfo {
  readonly bytes: Buffer;
}

/** Topics remembered by the replay reader; the memo is cleared when full. */
export const TOPIC_MEMO_ENTRIES = 4096;

/**
 * A replay reads the same few topics again and again (a device publishes on one): their routes
 * are kept by the topic's bytes, so a record's topic is neither decoded to a string nor parsed
 * again. The key is topicHash of the bytes (their length and last 16 bytes), and the bytes
 * themselves are compared on a hit. Topics that share that hash (the same length and ending, as
 * `site-a/.../dev-1` and `site-b/.../dev-1` can) are kept by a hash of every byte instead, in a
 * second table, so they do not take turns in one entry; two of that hash too do, each still routed
 * as itself.
 */
function createTopicMemo(kinds: KindRegistry, router: TopicRouter, maxEntries: number): (buf: Buffer, start: number, end: number) => TopicEntry {
  const entries = new Map<number, TopicEntry>();
  /** The topics whose topicHash an other topic holds in `entries`, by a hash of every byte. */
  const shared = new Map<number, TopicEntry>();
  return (buf, start, end) => {
    const h = topicHash(buf, start, end);
    const hit = entries.get(h);
    if (hit !== undefined && sameBytes(hit.bytes, buf, start, end)) return hit;
    const table = hit === undefined ? entries : shared;
    const key = hit === undefined ? h : wholeHash(buf, start, end);
    if (table === shared) {
      const found = shared.get(key);
      if (found !== undefined && sameBytes(found.bytes, buf, start, end)) return found;
    }
    const entry: TopicEntry = { ...topicInfo(buf.toString('utf8', start, end), kinds, router), bytes: Buffer.from(buf.subarray(start, end)) };
    if (entries.size + shared.size >= maxEntries) {
      entries.clear();
      shared.clear();
    }
    table.set(key, entry);
    return entry;
  };
}

/** FNV-1a over every byte of buf[start, end). */
function wholeHash(buf: Buffer, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

/** Compared from the end, where topics of one kind differ. */
function sameBytes(a: Buffer, buf: Buffer, start: number, end: number): boolean {
  if (a.length !== end - start) return false;
  for (let i = a.length - 1; i >= 0; i--) if (a[i] !== buf[start + i]) return false;
  return true;
}

/**
 * How recovery reads ingest records: their readings as the live path decoded them (what
 * readingsOfIngestRecord gives, with the topics' routes remembered), and their receivedAt.
 */
export function createIngestRecordReader(
  kinds: KindRegistry,
  decoder: PayloadDecoder,
  router: TopicRouter = createTopicRouter({ kinds }),
  maxTopics = TOPIC_MEMO_ENTRIES,
): { readings(payload: Buffer, receivedAt?: number): readonly Reading[]; receivedAt(payload: Buffer): number } {
  const topicOf = createTopicMemo(kinds, router, maxTopics);
  return {
    readings(payload, receivedAt = receivedAtOfIngestRecord(payload)) {
      const topicEnd = topicEndOfIngestRecord(payload);
      return readingsOfBody(topicOf(payload, INGEST_TOPIC_START, topicEnd), payload, topicEnd, receivedAt, decoder);
    },
    receivedAt: receivedAtOfIngestRecord,
  };
}
