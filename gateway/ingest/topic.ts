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

/**
 * parseSensorTopic with a memo, since every device publishes on the same topic again and again.
 * Only topics `keep` accepts are memoized (the gateway keeps those of known kinds, so an entry
 * is at most a kind name and a 128-character device id); cleared when it holds `maxEntries`.
 */
export class SensorTopicCache {
  private readonly parsed = new Map<string, SensorTopic>();

  constructor(
    private readonly maxEntries: number,
    private readonly keep: (topic: SensorTopic) => boolean,
  ) {}

  get size(): number {
    return this.parsed.size;
  }

  parse(topic: string): SensorTopic | null {
    const hit = this.parsed.get(topic);
    if (hit !== undefined) return hit;
    const t = parseSensorTopic(topic);
    if (t === null || !this.keep(t)) return t;
    if (this.parsed.size >= this.maxEntries) this.parsed.clear();
    this.parsed.set(topic, t);
    return t;
  }
}

export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID.test(id);
}
