/**
 * ingest.sources compiled: a topic pattern that names the device, and a JSON payload mapped to
 * a kind's fields by paths, with ts from a field or the arrival time and seq from a field or none.
 * Decoding is a pure function of (payload, receivedAt), so recovery replays it identically.
 */
import type { IngestConfig, SourceDefinition } from '../config/config.js';
import { DEVICE_SEGMENT, parsePath, parseTopicPattern, type PatternSegment } from '../config/sources.js';
import type { KindDescriptor, Reading } from '../kinds/kind-descriptor.js';
import type { DecodeResult } from './decode-result.js';
import { checkFieldValue, describeValue, jsonItems } from './payload-decoder.js';
import { isValidDeviceId } from './topic.js';

/**
 * How the payload of a routed topic becomes readings. A mapped source is one; another protocol
 * (e.g. Sparkplug B, whose births define its metrics) can be another, behind the same router.
 */
export interface PayloadMapping {
  decode(kind: KindDescriptor, deviceId: string, payload: Buffer, receivedAt: number): DecodeResult;
  /** The device sends no sequence number: its publishes are deduplicated by content within this horizon (0 = not at all). */
  readonly contentDedupHorizonMs: number | null;
  /** Its readings' event time is the arrival time. */
  readonly arrivalTime: boolean;
}

/** A topic routed to a kind and a device; `mapping` null = the sensors/<kind>/<id> payload formats. */
export interface TopicRoute {
  readonly kind: string;
  readonly deviceId: string;
  readonly mapping: PayloadMapping | null;
}

/** Matches topics of one source (or protocol); null = not its topic. */
export interface TopicMatcher {
  match(topic: string): TopicRoute | null;
}

const ISO_8601 = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$/i;
const HAS_OFFSET = /(Z|[+-]\d{2}(:?\d{2})?)$/i;

export interface CompiledSource extends TopicMatcher, PayloadMapping {
  readonly definition: SourceDefinition;
}

/** Compiles a source the config check passed (gateway/config/sources.ts). */
export function compileSource(def: SourceDefinition, kind: KindDescriptor, limits: Pick<IngestConfig, 'maxPastAgeMs' | 'maxFutureSkewMs'>): CompiledSource {
  const { segments } = parseTopicPattern(def.topic);
  const deviceAt = segments.findIndex((s) => 'name' in s && s.name === DEVICE_SEGMENT);
  const fields = Object.entries(kind.fields).map(([name, spec]) => ({ name, spec, path: def.fields[name] === undefined ? null : parsePath(def.fields[name]!).keys }));
  const tsPath = def.tsPath === null ? null : parsePath(def.tsPath).keys;
  const seqPath = def.seqPath === null ? null : parsePath(def.seqPath).keys;
  const tsFormat = def.tsFormat ?? 'ms';

  function match(topic: string): TopicRoute | null {
    const parts = topic.split('/');
    if (parts.length !== segments.length) return null;
    for (let i = 0; i < segments.length; i++) {
      const s: PatternSegment = segments[i]!;
      if ('literal' in s && s.literal !== parts[i]) return null;
    }
    const deviceId = parts[deviceAt]!;
    // A topic of the source's shape whose device segment cannot be an id is not its topic (bad_topic).
    if (!isValidDeviceId(deviceId)) return null;
    return { kind: kind.name, deviceId, mapping: compiled };
  }

  function decodeOne(item: unknown, deviceId: string, receivedAt: number, out: DecodeResult): void {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      out.rejected.push({ reason: 'invalid', detail: 'reading is not a JSON object' });
      return;
    }
    let seq = 0;
    if (seqPath !== null) {
      const raw = at(item, seqPath);
      if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 1) {
        out.rejected.push({ reason: 'invalid', detail: `${def.seqPath} (seq) must be an integer >= 1, got ${describeValue(raw)}` });
        return;
      }
      seq = raw;
    }
    let ts = receivedAt;
    if (tsPath !== null) {
      const raw = at(item, tsPath);
      const parsed = parseTimestamp(raw, tsFormat);
      if (parsed === null) {
        out.rejected.push({ reason: 'invalid', detail: `${def.tsPath} (ts) must be ${TS_FORMAT_TEXT[tsFormat]}, got ${describeValue(raw)}` });
        return;
      }
      ts = parsed;
      const minTs = receivedAt - limits.maxPastAgeMs;
      const maxTs = receivedAt + limits.maxFutureSkewMs;
      if (ts < minTs || ts > maxTs) {
        out.rejected.push({ reason: 'timestamp_out_of_range', detail: `ts ${ts} outside [${minTs}, ${maxTs}]` });
        return;
      }
    }
    const values: Record<string, number | string> = {};
    for (const f of fields) {
      const raw = f.path === null ? undefined : at(item, f.path);
      if (raw === undefined || raw === null) {
        if (f.spec.required) {
          out.rejected.push({ reason: 'invalid', detail: `missing field ${f.name} (${def.fields[f.name]})` });
          return;
        }
        continue;
      }
      const checked = checkFieldValue(f.name, f.spec, raw, false);
      if (typeof checked === 'object') {
        out.rejected.push({ reason: checked.reason, detail: `${checked.detail} (${def.fields[f.name]})` });
        return;
      }
      values[f.name] = checked;
    }
    const reading: Reading = { kind: kind.name, deviceId, seq, ts, values };
    out.readings.push(reading);
  }

  const compiled: CompiledSource = {
    definition: def,
    contentDedupHorizonMs: seqPath === null ? def.dedupHorizonMs : null,
    arrivalTime: tsPath === null,
    match,
    decode(_kind, deviceId, payload, receivedAt) {
      const out: DecodeResult = { readings: [], rejected: [] };
      const items = jsonItems(payload, out);
      if (items === null) return out;
      for (const item of items) decodeOne(item, deviceId, receivedAt, out);
      return out;
    },
  };
  return compiled;
}

const TS_FORMAT_TEXT = { ms: 'an integer (ms since epoch)', s: 'a number (s since epoch)', iso8601: 'an ISO 8601 date and time' } as const;

/** Event time in ms from a value of the given format; null when it is not one. */
export function parseTimestamp(raw: unknown, format: 'ms' | 's' | 'iso8601'): number | null {
  if (format === 'ms') return typeof raw === 'number' && Number.isSafeInteger(raw) ? raw : null;
  if (format === 's') {
    if (typeof raw !== 'number' || !Number.isFinite(raw)) return null;
    const ms = Math.round(raw * 1000);
    return Number.isSafeInteger(ms) ? ms : null;
  }
  if (typeof raw !== 'string' || raw.length > 40 || !ISO_8601.test(raw)) return null;
  // Without an offset, Date.parse would read local time: a time without one is UTC here.
  const text = raw.replace(' ', 'T');
  const ms = Date.parse(HAS_OFFSET.test(text) ? text : `${text}Z`);
  return Number.isFinite(ms) ? ms : null;
}

/** The value at `keys` in a parsed JSON value; undefined when absent. Own keys only. */
function at(value: unknown, keys: readonly string[]): unknown {
  let cur = value;
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object') return undefined;
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(k)) return undefined;
      cur = cur[Number(k)];
    } else {
      if (!Object.hasOwn(cur, k)) return undefined;
      cur = (cur as Record<string, unknown>)[k];
    }
  }
  return cur;
}
