import type { AlertEvent } from '../wire/alert.js';
import type { WindowEvent } from '../wire/window.js';

/** A field value an event offers to filters; null = absent (SQL NULL). */
export type FieldValue = string | number | boolean | null;
export type EventFields = Readonly<Record<string, FieldValue>>;

/**
 * The flat view of an event that filters and `where=` see: the wire object's scalar fields, then
 * its group values (lane, vehicleClass, ...) and, for windows, its aggregate values (count,
 * bpm_mean, ...). A top-level field wins over a group or value of the same name, a group value
 * over an aggregate.
 */
export function alertFields(e: AlertEvent): EventFields {
  const out: Record<string, FieldValue> = Object.create(null) as Record<string, FieldValue>;
  for (const [k, v] of Object.entries(e.group)) out[k] = v;
  out['kind'] = e.kind;
  out['deviceId'] = e.deviceId;
  out['rule'] = e.rule;
  out['ruleKind'] = e.ruleKind;
  out['severity'] = e.severity;
  out['state'] = e.state;
  out['id'] = e.id;
  out['value'] = e.value;
  out['threshold'] = e.threshold;
  out['windowStart'] = e.windowStart;
  out['windowEnd'] = e.windowEnd;
  out['episodeStart'] = e.episodeStart;
  out['firedAt'] = e.firedAt;
  out['resolvedAt'] = e.resolvedAt;
  out['summary'] = e.summary;
  out['offset'] = e.offset;
  return out;
}

export function windowFields(e: WindowEvent): EventFields {
  const out: Record<string, FieldValue> = Object.create(null) as Record<string, FieldValue>;
  for (const [k, v] of Object.entries(e.values)) out[k] = v;
  for (const [k, v] of Object.entries(e.group)) out[k] = v;
  out['kind'] = e.kind;
  out['deviceId'] = e.deviceId;
  out['sizeMs'] = e.sizeMs;
  out['slideMs'] = e.slideMs;
  out['start'] = e.start;
  out['end'] = e.end;
  out['revision'] = e.revision;
  out['offset'] = e.offset;
  return out;
}
