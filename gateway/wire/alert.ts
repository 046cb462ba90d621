import { createHash } from 'node:crypto';

/**
 * The one wire format of an alert transition, as every consumer outside the gateway sees it: the
 * log record of an alert (RECORD_TYPES.alert), the MQTT republish on alerts/<rule>/<kind>/<device>,
 * /v1/alerts, the SSE stream (`event: alert`), webhooks and the push proxy all carry exactly this
 * JSON. Version 1; fields are only ever added.
 */
export const ALERT_WIRE_VERSION = 1;

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
export const ALERT_STATES = ['FIRING', 'RESOLVED'] as const;
export type AlertState = (typeof ALERT_STATES)[number];
export const RULE_KINDS = ['threshold', 'silence', 'loss'] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

/** An alert transition as kept in the log (without its offset, which the log assigns). */
export interface AlertTransition {
  readonly v: typeof ALERT_WIRE_VERSION;
  /**
   * The episode's id: deterministic from (rule, key, episode start), so a replay of the same
   * readings gives the same id; its FIRING and its RESOLVED share it. 32 lowercase hex digits
   * (fits a Web Push `Topic`, RFC 8030 §5.4).
   */
  readonly id: string;
  readonly rule: string;
  readonly ruleKind: RuleKind;
  readonly severity: Severity;
  readonly state: AlertState;
  /** The sensor kind (heart_rate, bridge, ...). */
  readonly kind: string;
  readonly deviceId: string;
  /** Window group values that are part of the key (e.g. { lane: '2' }); {} when none. */
  readonly group: Readonly<Record<string, string>>;
  /** The value that decided the transition (aggregate, seconds of silence, loss fraction); null when none. */
  readonly value: number | null;
  /** The level crossed: the fire level for FIRING, the clear level for RESOLVED; null for silence's resolve. */
  readonly threshold: number | null;
  /** Event-time window (ms since epoch) of the value; null for silence. */
  readonly windowStart: number | null;
  readonly windowEnd: number | null;
  /** Event time (or, for silence, gateway time) the episode began being breached, ms. */
  readonly episodeStart: number;
  /** When the episode fired, ms (event time; gateway time for silence). */
  readonly firedAt: number;
  /** When it resolved (RESOLVED only), ms; null while firing. */
  readonly resolvedAt: number | null;
  /** One line for people (notifications, logs); never contains CR or LF. */
  readonly summary: string;
}

/** A transition as served: with the log offset of its record (the SSE id). */
export interface AlertEvent extends AlertTransition {
  readonly offset: number;
}

/** Deterministic episode id: 32 hex digits of SHA-256 over rule, key and episode start. */
export function alertId(rule: string, key: string, episodeStart: number): string {
  return createHash('sha256').update(`${rule}\u0000${key}\u0000${episodeStart}`).digest('hex').slice(0, 32);
}

export function encodeAlertTransition(t: AlertTransition): Buffer {
  return Buffer.from(JSON.stringify(t), 'utf8');
}

/** Decodes a log record's payload; throws a TypeError naming the problem for anything else. */
export function decodeAlertTransition(payload: Uint8Array): AlertTransition {
  const parsed: unknown = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  if (!isAlertTransition(parsed)) throw new TypeError('not an alert transition (wire version 1)');
  return parsed;
}

export function toAlertEvent(t: AlertTransition, offset: number): AlertEvent {
  return { ...t, offset };
}

/** Whether `x` has the fields of an alert transition (wire version 1). */
export function isAlertTransition(x: unknown): x is AlertTransition {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as Record<string, unknown>;
  return (
    o.v === ALERT_WIRE_VERSION &&
    typeof o.id === 'string' &&
    typeof o.rule === 'string' &&
    (RULE_KINDS as readonly unknown[]).includes(o.ruleKind) &&
    (SEVERITIES as readonly unknown[]).includes(o.severity) &&
    (ALERT_STATES as readonly unknown[]).includes(o.state) &&
    typeof o.kind === 'string' &&
    typeof o.deviceId === 'string' &&
    typeof o.group === 'object' &&
    o.group !== null &&
    typeof o.episodeStart === 'number' &&
    typeof o.firedAt === 'number'
  );
}

/** Severity order for `minSeverity` filters. */
export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

/** MQTT topic of an alert's republish: alerts/<rule>/<kind>/<deviceId>. */
export function alertTopic(t: Pick<AlertTransition, 'rule' | 'kind' | 'deviceId'>): string {
  return `alerts/${t.rule}/${t.kind}/${t.deviceId}`;
}
