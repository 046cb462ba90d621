/**
 * The ingest record of a Sparkplug B message holds its readings as resolved against the birth
 * certificate (metric names and aliases already mapped to fields, the monotonic seq already
 * computed), not the protobuf bytes: the birth may lie before the checkpoint a replay starts
 * from, and replay must give what the live path gave without it. The record's topic is the
 * message's own (spBv1.0/...). JSON:
 * `{ "v": 1, "kind", "seqStream", "readings": [[deviceId, seq, ts, {field: value}], ...] }`.
 */
import type { Reading } from '../kinds/kind-descriptor.js';

export const SPARKPLUG_TOPIC_PREFIX = 'spBv1.0/';

export function isSparkplugTopic(topic: string): boolean {
  return topic.startsWith(SPARKPLUG_TOPIC_PREFIX);
}

export function encodeSparkplugRecord(readings: readonly Reading[]): Buffer {
  const first = readings[0];
  return Buffer.from(
    JSON.stringify({ v: 1, kind: first?.kind ?? '', seqStream: first?.seqStream ?? null, readings: readings.map((r) => [r.deviceId, r.seq, r.ts, r.values]) }),
    'utf8',
  );
}

/** The readings of such a record; none when it is not one (damaged, or of a future version). */
export function decodeSparkplugRecord(payload: Buffer): readonly Reading[] {
  let o: unknown;
  try {
    o = JSON.parse(payload.toString('utf8'));
  } catch {
    return [];
  }
  if (typeof o !== 'object' || o === null) return [];
  const rec = o as { v?: unknown; kind?: unknown; seqStream?: unknown; readings?: unknown };
  if (rec.v !== 1 || typeof rec.kind !== 'string' || !Array.isArray(rec.readings)) return [];
  const kind = rec.kind;
  const seqStream = typeof rec.seqStream === 'string' ? rec.seqStream : undefined;
  const out: Reading[] = [];
  for (const item of rec.readings as unknown[]) {
    if (!Array.isArray(item) || item.length !== 4) continue;
    const [deviceId, seq, ts, values] = item as unknown[];
    if (typeof deviceId !== 'string' || typeof seq !== 'number' || typeof ts !== 'number' || typeof values !== 'object' || values === null) continue;
    out.push(seqStream === undefined ? { kind, deviceId, seq, ts, values: values as Record<string, number | string> } : { kind, deviceId, seq, ts, values: values as Record<string, number | string>, seqStream });
  }
  return out;
}
