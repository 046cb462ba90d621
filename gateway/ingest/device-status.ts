import { parseSensorTopic, type SensorTopic } from './topic.js';

/**
 * A device's status topic: `sensors/<kind>/<deviceId>/status`. The gateway takes an MQTT will
 * published there (the device's connection ended without a DISCONNECT) as "device gone" and
 * appends a deviceStatus record (RECORD_TYPES.deviceStatus, gateway/log/device-status-record.ts) for it.
 */
export const STATUS_TOPIC_SUFFIX = '/status';

/** The device a status topic belongs to; null when `topic` is not `sensors/<kind>/<deviceId>/status`. */
export function parseStatusTopic(topic: string): SensorTopic | null {
  if (!topic.endsWith(STATUS_TOPIC_SUFFIX)) return null;
  return parseSensorTopic(topic.slice(0, -STATUS_TOPIC_SUFFIX.length));
}
