import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { StatefulStage } from '../checkpoint/stateful-stage.js';
import type { Clock } from '../clock.js';
import type { CompiledRule, LossRule, SilenceRule, ThresholdRule } from '../config/alert-rules.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import { collectedCounter } from '../metrics.js';
import type { WindowResult } from '../window/types.js';
import { GatewayError } from '../errors.js';
import { LruList } from '../lru-list.js';
import { ALERT_WIRE_VERSION, alertId, isAlertTransition, type AlertEvent, type AlertState, type AlertTransition } from '../wire/alert.js';
import { INITIAL_EPISODE_STATE, isNewer, stepEpisode, type EpisodeRule, type EpisodeState } from './episode.js';
import type { FiringAlerts } from './types.js';

/**
 * The alert engine: threshold and loss rules over event time (episode.ts), silence rules over the
 * gateway's clock. One FIRING and one RESOLVED per episode, with a deterministic id; every
 * transition goes to `record` (which appends it to the log) before the listeners hear of it.
 *
 * State per (rule, key) and the last arrival of each device are a stateful stage of the one
 * checkpoint ('alerts'). Bounded: at most `maxKeys` (rule, key) entries and as many devices; past
 * it an entry in state ok (the least recently used of the oldest few) is forgotten, else the new
 * key is refused (MAX_KEYS_POLICY), both counted.
 */
export const MAX_KEYS_POLICY = 'evict-ok-then-refuse' as const;
/** How many of the least recently used entries are looked at for one in state ok. */
const EVICTION_SCAN = 32;

export interface AlertEngineOptions {
  readonly rules: readonly CompiledRule[];
  readonly maxKeys: number;
  readonly clock: Clock;
  /**
   * Appends a transition to the log; returns its offset, or -1 when it was already logged before
   * a restart (not appended again) or the log refused it (logged by the caller).
   */
  readonly record: (t: AlertTransition, replay: boolean) => { readonly offset: number; readonly logged: boolean; readonly item?: AlertTransition };
  readonly registry?: Registry;
  readonly logger?: Logger;
}

export type TransitionListener = (t: AlertTransition, offset: number, replay: boolean, logged: boolean) => void;

interface Entry {
  readonly ruleId: string;
  readonly kind: string;
  readonly deviceId: string;
  readonly group: Readonly<Record<string, string>>;
  /** keyOf(deviceId, group): the entry's key within its rule and kind. */
  readonly key: string;
  state: EpisodeState;
  /** The FIRING transition of the episode firing now, with its offset (null otherwise). */
  firing: AlertEvent | null;
  /** Loss rules: the bucket being counted. */
  bucket: { start: number; received: number; missing: number } | null;
  /** Neighbours in least recently used order (LruList). */
  prev: Entry | null;
  next: Entry | null;
}

interface Seen {
  readonly kind: string;
  readonly deviceId: string;
  /** receivedAt of the last reading (id of a silence episode). */
  lastSeen: number;
  /** The same, moved later by gateway downtime (which is not device silence). */
  silentFrom: number;
  /** Neighbours in order of last arrival (LruList). */
  prev: Seen | null;
  next: Seen | null;
}

/**
 * The entries of one rule: kind -> key within the rule (keyOf) -> entry. Looked up level by level,
 * so a reading's kind and device id are hashed as they come, not joined into a new string. A
 * device is a kind and an id (topics are sensors/<kind>/<deviceId>): the same id in two kinds is
 * two devices.
 */
type RuleTable = Map<string, Map<string, Entry>>;

interface Snapshot {
  readonly v: 1;
  readonly takenAt: number;
  readonly entries: readonly { r: string; k: string; d: string; g: Record<string, string>; s: SerializedState; f: AlertEvent | null; b: Entry['bucket'] }[];
  readonly seen: readonly [kind: string, deviceId: string, lastSeen: number, silentFrom: number][];
  readonly lastArrival: number;
}
type SerializedState = [phase: EpisodeState['phase'], since: number, firedAt: number, clearSince: number | null, lastStart: number | null, lastEnd: number | null];

export class AlertEngine implements StatefulStage, FiringAlerts {
  readonly name = 'alerts';
  /** (rule, key) entries by rule; their least recently used order is `entryOrder`. */
  private readonly tables = new Map<string, RuleTable>();
  private readonly entryOrder = new LruList<Entry>();
  /** Last arrival by kind and device id; in order of last arrival in `seenOrder`. */
  private readonly seen = new Map<string, Map<string, Seen>>();
  private readonly seenOrder = new LruList<Seen>();
  private readonly thresholdByKind = new Map<string, { readonly rule: ThresholdRule; readonly table: RuleTable; readonly keyFields: readonly string[] }[]>();
  private readonly silenceRules: SilenceRule[] = [];
  private readonly silenceTables: RuleTable[] = [];
  private readonly lossRules: LossRule[] = [];
  private readonly lossTables: RuleTable[] = [];
  private readonly listeners: TransitionListener[] = [];
  private lastArrival = 0;
  private restoredTakenAt = 0;
  /** Firing episodes of the checkpoint whose rule is gone or no longer applies: resolved by afterReplay(). */
  private orphans: AlertEvent[] = [];
  readonly stats = { evicted: 0, refused: 0, devicesForgotten: 0, transitions: 0 };
  private readonly transitions: Counter | null;
  private readonly evaluation: Histogram | null;
  private readonly firingByRule = new Map<string, number>();

  constructor(private readonly options: AlertEngineOptions) {
    for (const rule of options.rules) {
      const table: RuleTable = this.tables.get(rule.id) ?? new Map();
      this.tables.set(rule.id, table);
      if (rule.kind === 'threshold') {
        const list = this.thresholdByKind.get(rule.sensorKind) ?? [];
        // keyOf sorts the names of the group's fields: sorted once here, so a window's key is made without picking its group first.
        list.push({ rule, table, keyFields: [...new Set(rule.keyGroupFields)].sort() });
        this.thresholdByKind.set(rule.sensorKind, list);
      } else if (rule.kind === 'silence') {
        this.silenceRules.push(rule);
        this.silenceTables.push(table);
      } else {
        this.lossRules.push(rule);
        this.lossTables.push(table);
      }
    }
    const registers = options.registry === undefined ? [] : [options.registry];
    if (options.registry !== undefined) {
      const severityOf = new Map(options.rules.map((r) => [r.id, r.severity]));
      const firing = this.firingByRule;
      new Gauge({
        name: 'pulsegate_alerts_firing',
        help: 'Alert episodes firing now',
        labelNames: ['rule', 'severity'],
        registers,
        collect() {
          for (const [rule, severity] of severityOf) this.set({ rule, severity }, firing.get(rule) ?? 0);
        },
      });
      const entries = this.entryOrder;
      new Gauge({ name: 'pulsegate_alert_keys', help: 'Tracked (rule, key) entries of the alert engine (bounded by alerts.maxKeys)', registers, collect() { this.set(entries.size); } });
      collectedCounter(options.registry, 'pulsegate_alert_keys_evicted_total', 'Alert keys in state ok forgotten to make room (alerts.maxKeys)', () => this.stats.evicted);
      collectedCounter(options.registry, 'pulsegate_alert_keys_refused_total', 'New alert keys refused because alerts.maxKeys were all pending or firing', () => this.stats.refused);
      collectedCounter(options.registry, 'pulsegate_alert_devices_forgotten_total', 'Devices forgotten by the silence check to make room (alerts.maxKeys)', () => this.stats.devicesForgotten);
    }
    this.transitions = options.registry === undefined ? null : new Counter({ name: 'pulsegate_alert_transitions_total', help: 'Alert transitions (FIRING, RESOLVED) by rule', labelNames: ['rule', 'state'], registers });
    this.evaluation =
      options.registry === undefined ? null : new Histogram({ name: 'pulsegate_alert_rule_evaluation_seconds', help: 'Time to evaluate the rules of one window (or one silence check)', labelNames: ['trigger'], buckets: [1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 2e-3, 1e-2, 0.1], registers });
    for (const r of options.rules) {
      this.transitions?.inc({ rule: r.id, state: 'FIRING' }, 0);
      this.transitions?.inc({ rule: r.id, state: 'RESOLVED' }, 0);
    }
  }

  onTransition(listener: TransitionListener): void {
    this.listeners.push(listener);
  }

  /** An emitted window (first emission or correction). */
  onWindow(w: WindowResult, replay = false): void {
    const rules = this.thresholdByKind.get(w.kind);
    if (rules === undefined) return;
    const t0 = this.evaluation === null ? 0 : performance.now();
    for (const { rule, table, keyFields } of rules) {
      if (w.sizeMs !== rule.windowMs || w.slideMs !== w.sizeMs) continue;
      const value = w.values[rule.aggregate];
      if (value === undefined || !rule.matchesDevice(w.deviceId) || !groupMatches(w.group, rule.where)) continue;
      const key = keyOfFields(w.deviceId, w.group, keyFields);
      const found = table.get(w.kind)?.get(key);
      // A correction for a key not tracked (state ok, left out of the checkpoint or forgotten to
      // make room): its first emission was evaluated, so it changes nothing.
      if (found === undefined && w.revision > 0) continue;
      const entry = found !== undefined ? this.touched(found) : this.entry(rule.id, table, w.kind, w.deviceId, pick(w.group, rule.keyGroupFields), key);
      if (entry === null) continue;
      if (!isNewer(entry.state, w)) {
        // A correction (or a duplicate) of a window already evaluated: transitions are decided on
        // first emissions, so it never starts or ends an episode, nor fires one twice.
        continue;
      }
      this.step(rule, entry, { start: w.start, end: w.end, value }, rule.aggregate, replay);
    }
    if (this.evaluation !== null) this.evaluation.observe({ trigger: 'window' }, (performance.now() - t0) / 1000);
  }

  /** The readings of one durable record: arrival for the silence rules, counts for the loss rules. */
  onReadings(readings: readonly Reading[], receivedAt: number, gaps: number, gapFills: number, replay = false): void {
    const first = readings[0];
    if (first === undefined) return;
    if (receivedAt > this.lastArrival) this.lastArrival = receivedAt;
    if (this.silenceRules.length > 0) this.arrived(first.kind, first.deviceId, receivedAt, replay);
    if (this.lossRules.length > 0) this.countLoss(first, readings.length, gaps - gapFills, replay);
  }

  /** A device said it is gone (offline: silence fires at once) or back (online: silence resolves). */
  onDeviceStatus(kind: string, deviceId: string, status: 'offline' | 'online', reason: string, at: number, replay = false): void {
    for (let i = 0; i < this.silenceRules.length; i++) {
      const rule = this.silenceRules[i]!;
      if ((rule.sensorKind !== null && rule.sensorKind !== kind) || !rule.matchesDevice(deviceId)) continue;
      const entry = this.entry(rule.id, this.silenceTables[i]!, kind, deviceId, {}, deviceId);
      if (entry === null) continue;
      if (status === 'offline' && entry.state.phase !== 'firing') {
        entry.state = { ...INITIAL_EPISODE_STATE, phase: 'firing', since: at, firedAt: at };
        this.emit(rule, entry, 'FIRING', { value: null, threshold: rule.afterMs / 1000, windowStart: null, windowEnd: null, episodeStart: at, firedAt: at, resolvedAt: null, summary: `${label(rule)}: ${deviceId} reported offline (${reason})` }, replay);
      } else if (status === 'online' && entry.state.phase === 'firing') {
        this.resolveSilence(rule, entry, at, `${label(rule)}: ${deviceId} reported online (${reason})`, replay);
      }
    }
  }

  /** The silence check (on its schedule): fires for every device silent longer than a rule's `after`. */
  checkSilence(now = this.options.clock.now()): void {
    if (this.silenceRules.length === 0) return;
    const t0 = performance.now();
    for (let s = this.seenOrder.head; s !== null; s = s.next) {
      const silentMs = now - s.silentFrom;
      for (let i = 0; i < this.silenceRules.length; i++) {
        const rule = this.silenceRules[i]!;
        if (silentMs < rule.afterMs || (rule.sensorKind !== null && rule.sensorKind !== s.kind) || !rule.matchesDevice(s.deviceId)) continue;
        const entry = this.entry(rule.id, this.silenceTables[i]!, s.kind, s.deviceId, {}, s.deviceId);
        if (entry === null || entry.state.phase === 'firing') continue;
        entry.state = { ...INITIAL_EPISODE_STATE, phase: 'firing', since: s.lastSeen, firedAt: now };
        const seconds = Math.round(silentMs / 1000);
        this.emit(rule, entry, 'FIRING', { value: seconds, threshold: rule.afterMs / 1000, windowStart: null, windowEnd: null, episodeStart: s.lastSeen, firedAt: now, resolvedAt: null, summary: `${label(rule)}: no reading from ${s.deviceId} for ${seconds} s` }, false);
      }
    }
    this.evaluation?.observe({ trigger: 'silence' }, (performance.now() - t0) / 1000);
  }

  /**
   * After recovery replayed the log: the time the gateway was down is not device silence, so
   * every device's silence clock moves on by it (the later of the checkpoint's time and the last
   * arrival seen is taken as when the gateway went down).
   */
  afterReplay(now = this.options.clock.now()): void {
    this.resolveOrphans(now);
    const down = Math.max(this.restoredTakenAt, this.lastArrival);
    const shift = down > 0 ? now - down : 0;
    if (shift <= 0) return;
    for (let s = this.seenOrder.head; s !== null; s = s.next) s.silentFrom += shift;
  }

  /**
   * After replay, before afterReplay(): the transitions the log holds after the checkpoint that
   * replay did not produce again (SenderLog.unmatched()), in log order. Those come from the clock,
   * not from ingest records (a silence check, a device's death or birth), and were told before the
   * crash: the state takes them, so an episode fired then resolves once when the device is back,
   * and one resolved then is not resolved again.
   */
  adoptLogged(logged: readonly { readonly item: AlertTransition; readonly offset: number }[]): void {
    const rules = new Map(this.options.rules.map((r) => [r.id, r]));
    for (const { item: t, offset } of logged) {
      const rule = rules.get(t.rule);
      if (rule === undefined || rule.kind !== t.ruleKind) continue;
      const entry = this.entry(rule.id, this.tables.get(rule.id)!, t.kind, t.deviceId, t.group, keyOf(t.deviceId, t.group));
      if (entry === null) continue;
      const firingBefore = entry.firing !== null;
      if (t.state === 'FIRING' && entry.state.phase !== 'firing') {
        entry.state = { ...entry.state, phase: 'firing', since: t.episodeStart, firedAt: t.firedAt, clearSince: null };
        entry.firing = { ...t, offset };
      } else if (t.state === 'RESOLVED' && entry.firing?.id === t.id) {
        entry.state = { ...INITIAL_EPISODE_STATE, lastStart: entry.state.lastStart, lastEnd: entry.state.lastEnd };
        entry.firing = null;
      }
      const delta = (entry.firing !== null ? 1 : 0) - (firingBefore ? 1 : 0);
      if (delta !== 0) this.firingByRule.set(rule.id, (this.firingByRule.get(rule.id) ?? 0) + delta);
    }
  }

  firing(): readonly AlertEvent[] {
    const out: AlertEvent[] = [];
    for (let e = this.entryOrder.head; e !== null; e = e.next) if (e.firing !== null) out.push(e.firing);
    return out.sort((a, b) => a.firedAt - b.firedAt || a.offset - b.offset);
  }

  snapshot(): unknown {
    const entries: Snapshot['entries'][number][] = [];
    for (let e = this.entryOrder.head; e !== null; e = e.next) {
      const s = e.state;
      // A key in state ok without a loss bucket holds nothing a restart needs (only which window
      // it saw last, and a correction of that is ignored for an unknown key): left out, so the
      // checkpoint holds the keys that matter, not every key seen.
      if (s.phase === 'ok' && e.firing === null && e.bucket === null) continue;
      entries.push({ r: e.ruleId, k: e.kind, d: e.deviceId, g: { ...e.group }, s: [s.phase, s.since, s.firedAt, s.clearSince, finite(s.lastStart), finite(s.lastEnd)], f: e.firing, b: e.bucket === null ? null : { ...e.bucket } });
    }
    const seen: Snapshot['seen'][number][] = [];
    for (let s = this.seenOrder.head; s !== null; s = s.next) seen.push([s.kind, s.deviceId, s.lastSeen, s.silentFrom]);
    const snap: Snapshot = { v: 1, takenAt: this.options.clock.now(), entries, seen, lastArrival: this.lastArrival };
    return snap;
  }

  restore(state: unknown): void {
    for (const table of this.tables.values()) table.clear();
    this.entryOrder.clear();
    this.seen.clear();
    this.seenOrder.clear();
    this.firingByRule.clear();
    if (state === undefined || state === null) return;
    // Checked whole before anything is taken: a state that is not one is refused, as the other
    // stages refuse theirs (starting empty would fire again, under new ids, what fires now).
    const problem = snapshotProblem(state);
    if (problem !== null) throw new GatewayError('GW_ERR_CHECKPOINT', `alert engine: not a version 1 snapshot (${problem})`);
    const snap = state as Snapshot;
    const rules = new Map(this.options.rules.map((r) => [r.id, r]));
    this.orphans = [];
    for (const e of snap.entries) {
      // A rule removed from the config since, or changed so that it no longer applies to the key:
      // its state goes with it, and an episode it had firing is resolved after replay.
      const rule = rules.get(e.r);
      if (rule === undefined || !stillApplies(rule, e)) {
        if (e.f !== null) this.orphans.push(e.f);
        continue;
      }
      const [phase, since, firedAt, clearSince, lastStart, lastEnd] = e.s;
      const entry: Entry = { ruleId: e.r, kind: e.k, deviceId: e.d, group: e.g, key: keyOf(e.d, e.g), state: { phase, since, firedAt, clearSince, lastStart: lastStart ?? -Infinity, lastEnd: lastEnd ?? -Infinity }, firing: e.f, bucket: e.b, prev: null, next: null };
      // A key twice takes the place of the first (as a Map's set would), in the first one's order.
      const byKey = getOrAdd(this.tables.get(e.r)!, e.k);
      const twice = byKey.get(entry.key);
      byKey.set(entry.key, entry);
      if (twice === undefined) this.entryOrder.push(entry);
      else this.entryOrder.replace(twice, entry);
      if (entry.firing !== null) this.firingByRule.set(e.r, (this.firingByRule.get(e.r) ?? 0) + 1);
    }
    for (const [kind, deviceId, lastSeen, silentFrom] of snap.seen) {
      const s: Seen = { kind, deviceId, lastSeen, silentFrom, prev: null, next: null };
      const byId = getOrAdd(this.seen, kind);
      const twice = byId.get(deviceId);
      byId.set(deviceId, s);
      if (twice === undefined) this.seenOrder.push(s);
      else this.seenOrder.replace(twice, s);
    }
    this.lastArrival = snap.lastArrival ?? 0;
    this.restoredTakenAt = snap.takenAt ?? 0;
  }

  private step(rule: ThresholdRule | LossRule, entry: Entry, w: { start: number; end: number; value: number }, what: string, replay: boolean): void {
    const episodeRule: EpisodeRule = rule.kind === 'threshold' ? rule : { direction: 'above', fireLevel: rule.fireLevel, clearLevel: rule.clearLevel, forMs: 0, clearForMs: 0 };
    const result = stepEpisode(episodeRule, entry.state, w);
    entry.state = result.state;
    if (result.transition === null) return;
    const where = Object.entries(entry.group)
      .map(([k, v]) => ` ${k}=${v}`)
      .join('');
    const shown = rule.kind === 'loss' ? `${(w.value * 100).toFixed(1)} % lost` : `${what} ${round(w.value)}`;
    if (result.transition === 'FIRING') {
      const dir = rule.kind === 'threshold' ? rule.direction : 'above';
      this.emit(rule, entry, 'FIRING', { value: w.value, threshold: rule.fireLevel, windowStart: w.start, windowEnd: w.end, episodeStart: result.episodeStart, firedAt: result.firedAt, resolvedAt: null, summary: `${label(rule)}: ${entry.deviceId}${where} ${shown} (${dir} ${rule.fireLevel})` }, replay);
    } else {
      this.emit(rule, entry, 'RESOLVED', { value: w.value, threshold: rule.clearLevel, windowStart: w.start, windowEnd: w.end, episodeStart: result.episodeStart, firedAt: result.firedAt, resolvedAt: result.resolvedAt, summary: `${label(rule)} resolved: ${entry.deviceId}${where} ${shown}` }, replay);
    }
  }

  private emit(rule: CompiledRule, entry: Entry, state: AlertState, fields: Pick<AlertTransition, 'value' | 'threshold' | 'windowStart' | 'windowEnd' | 'episodeStart' | 'firedAt' | 'resolvedAt' | 'summary'>, replay: boolean): void {
    const t: AlertTransition = {
      v: ALERT_WIRE_VERSION,
      id: alertId(rule.id, idKeyOf(rule, entry), fields.episodeStart),
      rule: rule.id,
      ruleKind: rule.kind,
      severity: rule.severity,
      state,
      kind: entry.kind,
      deviceId: entry.deviceId,
      group: entry.group,
      ...fields,
      summary: fields.summary.replace(/[\r\n]+/g, ' '),
    };
    const recorded = this.options.record(t, replay);
    const { offset, logged } = recorded;
    // Already in the log from before a restart: what was told then is what is told again (a
    // silence check that found the device silent again fires later than the first time did).
    const told = logged && recorded.item !== undefined ? recorded.item : t;
    if (told.firedAt !== entry.state.firedAt && entry.state.phase === 'firing') entry.state = { ...entry.state, firedAt: told.firedAt };
    const firingBefore = entry.firing !== null;
    entry.firing = state === 'FIRING' ? { ...told, offset } : null;
    const delta = (entry.firing !== null ? 1 : 0) - (firingBefore ? 1 : 0);
    if (delta !== 0) this.firingByRule.set(rule.id, (this.firingByRule.get(rule.id) ?? 0) + delta);
    this.stats.transitions++;
    this.transitions?.inc({ rule: rule.id, state });
    for (const l of this.listeners) l(told, offset, replay, logged);
  }

  /**
   * Resolves the episodes the checkpoint had firing under a rule that is gone or no longer applies
   * to their key: nothing else would, so their FIRING would stay unanswered (retained on MQTT,
   * open in the history). Logged like every transition; after a crash before the next checkpoint
   * the log recognises them.
   */
  private resolveOrphans(now: number): void {
    const orphans = this.orphans;
    this.orphans = [];
    for (const f of orphans) {
      const t: AlertTransition = {
        v: ALERT_WIRE_VERSION,
        id: f.id,
        rule: f.rule,
        ruleKind: f.ruleKind,
        severity: f.severity,
        state: 'RESOLVED',
        kind: f.kind,
        deviceId: f.deviceId,
        group: f.group,
        value: null,
        threshold: null,
        windowStart: null,
        windowEnd: null,
        episodeStart: f.episodeStart,
        firedAt: f.firedAt,
        resolvedAt: now,
        summary: `${f.rule} resolved: ${f.deviceId} is no longer watched by this rule (removed or changed in the config)`,
      };
      const { offset, logged } = this.options.record(t, false);
      this.stats.transitions++;
      this.transitions?.inc({ rule: t.rule, state: 'RESOLVED' });
      for (const l of this.listeners) l(t, offset, false, logged);
    }
  }

  private arrived(kind: string, deviceId: string, receivedAt: number, replay: boolean): void {
    let s = this.seen.get(kind)?.get(deviceId);
    if (s === undefined) {
      const oldest = this.seenOrder.head;
      if (this.seenOrder.size >= this.options.maxKeys && oldest !== null) {
        this.seenOrder.remove(oldest);
        removeFrom(this.seen, oldest.kind, oldest.deviceId);
        this.stats.devicesForgotten++;
      }
      s = { kind, deviceId, lastSeen: receivedAt, silentFrom: receivedAt, prev: null, next: null };
      getOrAdd(this.seen, kind).set(deviceId, s);
      this.seenOrder.push(s);
    } else {
      this.seenOrder.touch(s);
      if (receivedAt > s.lastSeen) s.lastSeen = receivedAt;
      if (receivedAt > s.silentFrom) s.silentFrom = receivedAt;
    }
    for (let i = 0; i < this.silenceRules.length; i++) {
      const entry = this.silenceTables[i]!.get(kind)?.get(deviceId);
      if (entry === undefined || entry.kind !== kind || entry.state.phase !== 'firing') continue;
      const rule = this.silenceRules[i]!;
      const silentS = Math.round((receivedAt - entry.state.since) / 1000);
      this.resolveSilence(rule, entry, receivedAt, `${label(rule)} resolved: ${deviceId} sent a reading after ${silentS} s`, replay);
    }
  }

  private resolveSilence(rule: SilenceRule, entry: Entry, at: number, summary: string, replay: boolean): void {
    const { since, firedAt } = entry.state;
    entry.state = INITIAL_EPISODE_STATE;
    this.emit(rule, entry, 'RESOLVED', { value: Math.max(0, Math.round((at - since) / 1000)), threshold: null, windowStart: null, windowEnd: null, episodeStart: since, firedAt, resolvedAt: at, summary }, replay);
  }

  private countLoss(first: Reading, received: number, netMissing: number, replay: boolean): void {
    const { kind, deviceId } = first;
    for (let i = 0; i < this.lossRules.length; i++) {
      const rule = this.lossRules[i]!;
      if ((rule.sensorKind !== null && rule.sensorKind !== kind) || !rule.matchesDevice(deviceId)) continue;
      const table = this.lossTables[i]!;
      const found = table.get(kind)?.get(deviceId);
      const entry = found !== undefined ? this.touched(found) : this.entry(rule.id, table, kind, deviceId, {}, deviceId);
      if (entry === null) continue;
      const start = Math.floor(first.ts / rule.windowMs) * rule.windowMs;
      const b = entry.bucket;
      if (b !== null && start > b.start) {
        // The bucket is over: a reading of a later one arrived. Judged once, on what it counted.
        const total = b.received + Math.max(0, b.missing);
        if (total >= rule.minReadings) this.step(rule, entry, { start: b.start, end: b.start + rule.windowMs, value: Math.max(0, b.missing) / total }, 'loss', replay);
        entry.bucket = { start, received, missing: netMissing };
      } else if (b === null) {
        entry.bucket = { start, received, missing: netMissing };
      } else {
        b.received += received;
        // Fills of a bucket already judged (late readings of an earlier one) came too late for it,
        // and are not this bucket's: they must not hide its own loss.
        b.missing += start < b.start ? Math.max(0, netMissing) : netMissing;
      }
    }
  }

  /**
   * The entry of (rule, device, group) in the rule's table, created if room is left (see
   * MAX_KEYS_POLICY); null when refused. `key` is keyOf(deviceId, group).
   */
  private entry(ruleId: string, table: RuleTable, kind: string, deviceId: string, group: Readonly<Record<string, string>>, key: string): Entry | null {
    const found = table.get(kind)?.get(key);
    if (found !== undefined) return this.touched(found);
    if (this.entryOrder.size >= this.options.maxKeys && !this.evictOne()) {
      this.stats.refused++;
      return null;
    }
    const entry: Entry = { ruleId, kind, deviceId, group, key, state: INITIAL_EPISODE_STATE, firing: null, bucket: null, prev: null, next: null };
    // After evictOne(), which may have dropped the kind's map when it emptied it.
    getOrAdd(table, kind).set(key, entry);
    this.entryOrder.push(entry);
    return entry;
  }

  /** Least recently used first: an entry used moves to the end. */
  private touched(entry: Entry): Entry {
    this.entryOrder.touch(entry);
    return entry;
  }

  private evictOne(): boolean {
    let n = 0;
    for (let e = this.entryOrder.head; e !== null; e = e.next) {
      if (e.state.phase === 'ok' && e.firing === null) {
        this.entryOrder.remove(e);
        removeFrom(this.tables.get(e.ruleId)!, e.kind, e.key);
        this.stats.evicted++;
        return true;
      }
      if (++n >= EVICTION_SCAN) break;
    }
    return false;
  }
}

function getOrAdd<T>(outer: Map<string, Map<string, T>>, k: string): Map<string, T> {
  let inner = outer.get(k);
  if (inner === undefined) {
    inner = new Map();
    outer.set(k, inner);
  }
  return inner;
}

/** Deletes outer[k][key], and the inner map once empty (kinds come and go with the devices). */
function removeFrom<T>(outer: Map<string, Map<string, T>>, k: string, key: string): void {
  const inner = outer.get(k);
  if (inner === undefined) return;
  inner.delete(key);
  if (inner.size === 0) outer.delete(k);
}

/**
 * The key an episode id is made of: a threshold rule watches one kind, so the device and group
 * say it; a silence or loss rule may watch every kind, so the kind is part of it.
 */
function idKeyOf(rule: CompiledRule, entry: Pick<Entry, 'kind' | 'deviceId' | 'group'>): string {
  return rule.kind === 'threshold' ? keyOf(entry.deviceId, entry.group) : `${entry.kind}/${keyOf(entry.deviceId, entry.group)}`;
}

/** The key of an alert within its rule: the device, and the group values that are part of it. */
export function keyOf(deviceId: string, group: Readonly<Record<string, string>>): string {
  return keyOfFields(deviceId, group, Object.keys(group).sort());
}

/** keyOf(deviceId, pick(group, fields)), for `fields` sorted and without repeats: `device/f1=v1,f2=v2`. */
function keyOfFields(deviceId: string, group: Readonly<Record<string, string>>, fields: readonly string[]): string {
  let key = deviceId;
  let sep = '/';
  for (const f of fields) {
    const v = group[f];
    if (v === undefined) continue;
    key += `${sep}${f}=${v}`;
    sep = ',';
  }
  return key;
}

function groupMatches(group: Readonly<Record<string, string>>, where: Readonly<Record<string, string>>): boolean {
  for (const k in where) if (group[k] !== where[k]) return false;
  return true;
}

function pick(group: Readonly<Record<string, string>>, fields: readonly string[]): Readonly<Record<string, string>> {
  if (fields.length === 0) return {};
  const out: Record<string, string> = {};
  for (const f of fields) if (group[f] !== undefined) out[f] = group[f];
  return out;
}

function label(rule: CompiledRule): string {
  return rule.description ?? rule.id;
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

/** Whether a checkpoint entry still belongs to `rule` as configured now (same kind of rule, sensor kind, devices, key fields). */
function stillApplies(rule: CompiledRule, e: Snapshot['entries'][number]): boolean {
  if (e.f !== null && e.f.ruleKind !== rule.kind) return false;
  if (!rule.matchesDevice(e.d)) return false;
  if (rule.kind === 'threshold') {
    if (rule.sensorKind !== e.k) return false;
    const fields = Object.keys(e.g).sort();
    const wanted = [...rule.keyGroupFields].sort();
    return fields.length === wanted.length && fields.every((f, i) => f === wanted[i]);
  }
  return (rule.sensorKind === null || rule.sensorKind === e.k) && Object.keys(e.g).length === 0;
}

const PHASES: readonly unknown[] = ['ok', 'pending', 'firing'];

/** What is wrong with a snapshot's shape, or null. */
function snapshotProblem(state: unknown): string | null {
  if (typeof state !== 'object' || state === null) return 'not an object';
  const snap = state as Record<string, unknown>;
  if (snap['v'] !== 1) return `version ${JSON.stringify(snap['v'])}`;
  if (!isNumOrAbsent(snap['takenAt']) || !isNumOrAbsent(snap['lastArrival'])) return 'takenAt or lastArrival not a number';
  if (!Array.isArray(snap['entries'])) return 'no entries';
  if (!Array.isArray(snap['seen'])) return 'no silence clocks';
  for (const [i, e] of (snap['entries'] as unknown[]).entries()) {
    if (typeof e !== 'object' || e === null) return `entries[${i}] not an object`;
    const o = e as Record<string, unknown>;
    if (typeof o['r'] !== 'string' || typeof o['k'] !== 'string' || typeof o['d'] !== 'string') return `entries[${i}]: rule, kind or device not a string`;
    if (typeof o['g'] !== 'object' || o['g'] === null || !Object.values(o['g']).every((v) => typeof v === 'string')) return `entries[${i}]: group not an object of strings`;
    const s = o['s'];
    if (!Array.isArray(s) || s.length !== 6 || !PHASES.includes(s[0]) || !isNum(s[1]) || !isNum(s[2]) || !s.slice(3).every((n: unknown) => n === null || isNum(n))) return `entries[${i}]: not an episode state`;
    const f = o['f'];
    if (f !== null && !(isAlertTransition(f) && isNum((f as unknown as Record<string, unknown>)['offset']))) return `entries[${i}]: firing episode not an alert`;
    const b = o['b'] as Record<string, unknown> | null;
    if (b !== null && (typeof b !== 'object' || !isNum(b['start']) || !isNum(b['received']) || !isNum(b['missing']))) return `entries[${i}]: loss bucket not one`;
  }
  for (const [i, s] of (snap['seen'] as unknown[]).entries()) {
    if (!Array.isArray(s) || s.length !== 4 || typeof s[0] !== 'string' || typeof s[1] !== 'string' || !isNum(s[2]) || !isNum(s[3])) return `seen[${i}]: not a silence clock`;
  }
  return null;
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function isNumOrAbsent(v: unknown): boolean {
  return v === undefined || isNum(v);
}

function finite(n: number): number | null {
  return Number.isFinite(n) ? n : null;
}
