/**
 * The one wire format of a window result outside the gateway: the log record of an emitted window
 * (RECORD_TYPES.window) and the SSE stream (`event: window`) carry exactly this JSON. Version 1.
 */
export const WINDOW_WIRE_VERSION = 1;

/** One emitted window: identity (kind, deviceId, sizeMs, slideMs, start, group) + aggregates. */
export interface WindowFields {
  readonly kind: string;
  readonly deviceId: string;
  /** Window length; for sliding windows `slideMs` says how often one starts. */
  readonly sizeMs: number;
  readonly slideMs: number;
  /** Inclusive start / exclusive end, event time, ms since epoch, aligned to UTC. */
  readonly start: number;
  readonly end: number;
  /** Values of the kind's window.groupBy fields, as strings (e.g. { vehicleClass: 'TRUCK', lane: '2' }). */
  readonly group: Readonly<Record<string, string>>;
  /** Aggregate columns named by aggregateColumn(), e.g. { count: 12 } or { bpm_min: 61, ... }. */
  readonly values: Readonly<Record<string, number>>;
  /** 0 for the first emission, +1 for every correction by late data (same identity: overwrite). */
  readonly revision: number;
}

export interface WindowTransition extends WindowFields {
  readonly v: typeof WINDOW_WIRE_VERSION;
}

export interface WindowEvent extends WindowTransition {
  readonly offset: number;
}

export function toWindowTransition(w: WindowFields): WindowTransition {
  return { v: WINDOW_WIRE_VERSION, kind: w.kind, deviceId: w.deviceId, sizeMs: w.sizeMs, slideMs: w.slideMs, start: w.start, end: w.end, group: w.group, values: w.values, revision: w.revision };
}

export function encodeWindowTransition(w: WindowTransition): Buffer {
  return Buffer.from(JSON.stringify(w), 'utf8');
}

export function decodeWindowTransition(payload: Uint8Array): WindowTransition {
  const parsed = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as Partial<WindowTransition> | null;
  if (parsed === null || typeof parsed !== 'object' || parsed.v !== WINDOW_WIRE_VERSION || typeof parsed.kind !== 'string' || typeof parsed.deviceId !== 'string' || typeof parsed.start !== 'number' || typeof parsed.values !== 'object') {
    throw new TypeError('not a window result (wire version 1)');
  }
  return parsed as WindowTransition;
}

/** Identity of a window (revisions of it share it). */
export function windowIdentity(w: Pick<WindowTransition, 'kind' | 'deviceId' | 'sizeMs' | 'slideMs' | 'start' | 'group'>): string {
  const g = Object.keys(w.group)
    .sort()
    .map((k) => `${k}=${w.group[k]}`)
    .join(',');
  return `${w.kind}/${w.deviceId}/${w.sizeMs}/${w.slideMs}/${w.start}/${g}`;
}
