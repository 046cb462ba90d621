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

export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID.test(id);
}
