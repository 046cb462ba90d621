/** Sensor topics are `sensors/<kind>/<deviceId>`; the device id is the last segment. */
export const SENSOR_TOPIC_PREFIX = 'sensors/';

export interface SensorTopic {
  readonly kind: string;
  readonly deviceId: string;
}

/** Device ids: 1-128 characters of [A-Za-z0-9_.:-], so they are safe as tags, keys and file names. */
const DEVICE_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Returns null when the topic is not a well-formed sensor topic. */
export function parseSensorTopic(topic: string): SensorTopic | null {
  if (!topic.startsWith(SENSOR_TOPIC_PREFIX)) return null;
  const rest = topic.slice(SENSOR_TOPIC_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  const kind = rest.slice(0, slash);
  const deviceId = rest.slice(slash + 1);
  if (!DEVICE_ID.test(deviceId)) return null;
  return { kind, deviceId };
}

/** A sensor topic as a topic route (gateway/ingest/source-mapping.ts): no payload mapping. */
export interface SensorRoute extends SensorTopic {
  readonly mapping: null;
}

/**
 * parseSensorTopic with a memo, since every device publishes on the same topic again and again:
 * the route it answers is the same object for the same topic each time, so routing a publish
 * allocates nothing. Only topics `keep` accepts are memoized (the gateway keeps those of known
 * kinds, so an entry is at most a kind name and a 128-character device id); cleared when it
 * holds `maxEntries`.
 */
export class SensorTopicCache {
  private readonly parsed = new Map<string, SensorRoute>();

  constructor(
    private readonly maxEntries: number,
    private readonly keep: (topic: SensorTopic) => boolean,
  ) {}

  get size(): number {
    return this.parsed.size;
  }

  route(topic: string): SensorRoute | null {
    const hit = this.parsed.get(topic);
    if (hit !== undefined) return hit;
    const t = parseSensorTopic(topic);
    if (t === null) return null;
    const route: SensorRoute = { kind: t.kind, deviceId: t.deviceId, mapping: null };
    if (!this.keep(t)) return route;
    if (this.parsed.size >= this.maxEntries) this.parsed.clear();
    this.parsed.set(topic, route);
    return route;
  }
}

/**
 * Why a topic (or another string of a packet) the MQTT parser decoded may not be used, or null.
 * Strings arrive as UTF-8 that must be well-formed [MQTT-1.5.3-1] and hold no U+0000 [MQTT-1.5.3-2]; the parser decodes
 * each ill-formed byte to U+FFFD, so a topic holding U+FFFD is refused (a literal U+FFFD, which is
 * well-formed, is refused with it: the decoded string cannot tell the two apart).
 */
export function illFormedTopic(topic: string, what: 'topic' | 'topic filter' | 'will topic' | 'client id' | 'username' = 'topic'): string | null {
  if (topic.indexOf('\u0000') >= 0) return `the ${what} contains U+0000 [MQTT-1.5.3-2]`;
  if (topic.indexOf('\uFFFD') >= 0) return `the ${what} is not well-formed UTF-8 (or holds U+FFFD) [MQTT-1.5.3-1]`;
  return null;
}

export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID.test(id);
}

/**
 * A hash of a topic's bytes buf[start, end) for tables of topics: FNV-1a over the length and the
 * last 16 bytes, where one device's topic differs from the next (the rest is the shared
 * `sensors/<kind>/` and a device id's common prefix). Callers compare the bytes on a hit.
 */
export function topicHash(buf: Uint8Array, start: number, end: number): number {
  let h = Math.imul(0x811c9dc5 ^ (end - start), 0x01000193);
  for (let i = Math.max(start, end - 16); i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}
