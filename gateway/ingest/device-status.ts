import { parseSensorTopic, type SensorTopic } from './topic.js';

/**
 * A device's status topic: `sensors/<kind>/<deviceId>/status`. The gateway takes an MQTT will
 * published there (the device's connection ended without a DISCONNECT) as "device gone" and
 * appends a deviceStatus record (RECORD_TYPES.deviceStatus) for it.
 */
export const STATUS_TOPIC_SUFFIX = '/status';

/** The device a status topic belongs to; null when `topic` is not `sensors/<kind>/<deviceId>/status`. */
export function parseStatusTopic(topic: string): SensorTopic | null {
  if (!topic.endsWith(STATUS_TOPIC_SUFFIX)) return null;
  return parseSensorTopic(topic.slice(0, -STATUS_TOPIC_SUFFIX.length));
}

export interface DeviceStatusRecord {
  readonly kind: string;
  readonly deviceId: string;
  readonly status: 'offline' | 'online';
  readonly reason: string;
  /** The gateway's time of arrival, ms since the epoch. */
  readonly at: number;
}

/** Payload of a deviceStatus record: JSON { v: 1, kind, deviceId, status, reason, at }. */
export function encodeDeviceStatus(r: DeviceStatusRecord): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, kind: r.kind, deviceId: r.deviceId, status: r.status, reason: r.reason, at: r.at }), 'utf8');
}
