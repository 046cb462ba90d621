/**
 * Payload of a RECORD_TYPES.deviceStatus record: a device's status told by the device or its
 * edge node (a Sparkplug B birth or death). JSON, one object:
 * `{ "v": 1, "kind", "deviceId", "status": "offline" | "online", "reason", "at" }`, `at` being the
 * gateway's time of arrival (ms since the epoch).
 */
export const DEVICE_STATUS_REASONS = ['sparkplug-death', 'sparkplug-birth'] as const;

export interface DeviceStatus {
  readonly kind: string;
  readonly deviceId: string;
  readonly status: 'offline' | 'online';
  /** sparkplug-death, sparkplug-birth; readers keep any other string as it is. */
  readonly reason: string;
  readonly at: number;
}

export function encodeDeviceStatus(s: DeviceStatus): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, kind: s.kind, deviceId: s.deviceId, status: s.status, reason: s.reason, at: s.at }), 'utf8');
}

/** The status of a deviceStatus record; null when the payload is not one (a damaged or future record). */
export function decodeDeviceStatus(payload: Buffer): DeviceStatus | null {
  let o: unknown;
  try {
    o = JSON.parse(payload.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof o !== 'object' || o === null) return null;
  const r = o as Record<string, unknown>;
  if (r['v'] !== 1 || typeof r['kind'] !== 'string' || typeof r['deviceId'] !== 'string' || typeof r['reason'] !== 'string' || typeof r['at'] !== 'number') return null;
  if (r['status'] !== 'offline' && r['status'] !== 'online') return null;
  return { kind: r['kind'], deviceId: r['deviceId'], status: r['status'], reason: r['reason'], at: r['at'] };
}
