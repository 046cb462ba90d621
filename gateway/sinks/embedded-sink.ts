import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import type { SinksConfig } from '../config/config.js';
import { GatewayError, isGatewayError } from '../errors.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { WindowResult } from '../window/types.js';
import type { SinkWriteObserver } from './sink-metrics.js';
import { ALERT_WIRE_VERSION, type AlertEvent } from '../wire/alert.js';
import type { AlertQuery, ReadingQuery, Sink, SinkBatch, WindowQuery } from './types.js';

export interface EmbeddedSinkOptions {
  readonly config: SinksConfig;
  readonly kinds: KindRegistry;
  readonly logger?: Logger;
  readonly metrics?: SinkWriteObserver;
}

/** Rows deleted by one retention pass. */
export interface EmbeddedRetentionResult {
  readonly readings: number;
  readonly windows: number;
  readonly health: number;
  readonly alerts: number;
}

export interface EmbeddedSink extends Sink {
  /**
   * Deletes readings older than rawRetention and windows/health/alerts older than windowRetention,
   * relative to `nowMs` (InfluxDB does this by itself with retention policies). For a cron job.
   */
  applyRetention(nowMs: number): EmbeddedRetentionResult;
}

export const EMBEDDED_SINK_NAME = 'embedded';

/*
 * One SQLite file, identities as primary keys so that INSERT OR REPLACE makes every resend an
 * overwrite (the same semantics as an InfluxDB point with the same measurement+tags+time):
 *   readings (kind, device, ts, seq)            -- seq keeps readings sharing a ms apart
 *   windows  (kind, device, size_ms, start, grp) -- grp: the group-by values as canonical JSON
 *   health   (ts)
 *   alerts   (id, state)                          -- one row per alert transition
 *
 * The alerts table is read by SQL (POST /v1/query views) as well: its columns are the wire format's
 * fields in snake_case (`offset` is an SQL keyword: quote it, "offset"); group_json is the group as
 * canonical JSON; the time of a row is fired_at for FIRING, resolved_at for RESOLVED.
 */
/** The time of an alert row (an index on this expression serves the history's range). */
const ALERT_TIME_SQL = `(CASE WHEN state = 'RESOLVED' THEN resolved_at ELSE fired_at END)`;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS readings (
  kind   TEXT    NOT NULL,
  device TEXT    NOT NULL,
  ts     INTEGER NOT NULL,
  seq    INTEGER NOT NULL,
  vals   TEXT    NOT NULL,
  PRIMARY KEY (kind, device, ts, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_by_time ON readings (kind, ts);
CREATE TABLE IF NOT EXISTS windows (
  kind     TEXT    NOT NULL,
  device   TEXT    NOT NULL,
  size_ms  INTEGER NOT NULL,
  start    INTEGER NOT NULL,
  grp      TEXT    NOT NULL,
  end_ms   INTEGER NOT NULL,
  slide_ms INTEGER NOT NULL,
  vals     TEXT    NOT NULL,
  revision INTEGER NOT NULL,
  PRIMARY KEY (kind, device, size_ms, start, grp)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS windows_by_time ON windows (kind, start);
CREATE TABLE IF NOT EXISTS health (
  ts   INTEGER PRIMARY KEY,
  vals TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
  id            TEXT    NOT NULL,
  rule          TEXT    NOT NULL,
  rule_kind     TEXT    NOT NULL,
  severity      TEXT    NOT NULL,
  state         TEXT    NOT NULL,
  kind          TEXT    NOT NULL,
  device_id     TEXT    NOT NULL,
  group_json    TEXT    NOT NULL,
  value         REAL,
  threshold     REAL,
  window_start  INTEGER,
  window_end    INTEGER,
  episode_start INTEGER NOT NULL,
  fired_at      INTEGER NOT NULL,
  resolved_at   INTEGER,
  "offset"      INTEGER NOT NULL,
  summary       TEXT    NOT NULL,
  PRIMARY KEY (id, state)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (${ALERT_TIME_SQL});
`;

/** SQLite result codes after which the same write can succeed later (lock, disk full, I/O). */
const RETRYABLE_SQLITE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|PROTOCOL)/;

function toSinkError(err: unknown, operation: string): GatewayError {
  if (isGatewayError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && RETRYABLE_SQLITE.test(code)) {
    return new GatewayError('GW_ERR_SINK_UNAVAILABLE', `embedded store ${operation} failed: ${message}`, {
      cause: err,
      retryable: true,
      details: { code },
    });
  }
  return new GatewayError(operation === 'query' ? 'GW_ERR_SINK_QUERY' : 'GW_ERR_SINK_WRITE', `embedded store ${operation} failed: ${message}`, {
    cause: err,
    retryable: false,
    ...(typeof code === 'string' ? { details: { code } } : {}),
  });
}

/** `7d`, `520w`, `12h` -> ms; `INF` -> null (keep forever). Same spelling as InfluxDB durations. */
export function retentionMs(value: string): number | null {
  if (value === 'INF') return null;
  const match = /^(\d+)([hdw])$/.exec(value);
  if (match === null) throw new Error(`invalid retention "${value}"`);
  const unit = match[2] === 'h' ? 3_600_000 : match[2] === 'd' ? 86_400_000 : 7 * 86_400_000;
  return Number(match[1]) * unit;
}

/** Group-by values as JSON with sorted keys, so equal groups give equal primary keys. */
function groupKey(group: Readonly<Record<string, string>>): string {
  const sorted: Record<string, string> = {};
  for (const key of Object.keys(group).sort()) sorted[key] = group[key] as string;
  return JSON.stringify(sorted);
}

/** NaN and Infinity have no JSON form; InfluxDB cannot store them either, so both sinks drop them. */
function finiteValues<V extends number | string>(values: Readonly<Record<string, V>>): Record<string, V> {
  const out: Record<string, V> = {};
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'number' && !Number.isFinite(value)) continue;
    out[key] = value;
  }
  return out;
}

interface ReadingRow {
  kind: string;
  device: string;
  ts: number;
  seq: number;
  vals: string;
}
interface AlertRow {
  id: string;
  rule: string;
  rule_kind: AlertEvent['ruleKind'];
  severity: AlertEvent['severity'];
  state: AlertEvent['state'];
  kind: string;
  device_id: string;
  group_json: string;
  value: number | null;
  threshold: number | null;
  window_start: number | null;
  window_end: number | null;
  episode_start: number;
  fired_at: number;
  resolved_at: number | null;
  offset: number;
  summary: string;
}

/** SQLite GLOB of a device glob (`*`, `?`; everything else literal, so `[` is escaped as `[[]`). */
export function sqliteGlob(glob: string): string {
  return glob.replace(/\[/g, '[[]');
}

/** NaN and Infinity have no SQL (nor JSON) form: stored as NULL. */
function finiteOrNull(n: number | null): number | null {
  return n !== null && Number.isFinite(n) ? n : null;
}

function rowToAlert(row: AlertRow): AlertEvent {
  return {
    v: ALERT_WIRE_VERSION,
    id: row.id,
    rule: row.rule,
    ruleKind: row.rule_kind,
    severity: row.severity,
    state: row.state,
    kind: row.kind,
    deviceId: row.device_id,
    group: JSON.parse(row.group_json) as Record<string, string>,
    value: row.value,
    threshold: row.threshold,
    windowStart: row.window_start,
    windowEnd: row.window_end,
    episodeStart: row.episode_start,
    firedAt: row.fired_at,
    resolvedAt: row.resolved_at,
    summary: row.summary,
    offset: row.offset,
  };
}

interface WindowRow {
  kind: string;
  device: string;
  size_ms: number;
  start: number;
  grp: string;
  end_ms: number;
  slide_ms: number;
  vals: string;
  revision: number;
}

/**
 * The store used when no InfluxDB is configured: SQLite through better-sqlite3.
 *
 * Durability: WAL journal with synchronous=FULL. `write` resolving is the acknowledgement after
 * which the outgoing record is marked acked in the message log and never resent, so the commit
 * must survive a power loss, not only a process crash. synchronous=NORMAL in WAL mode would skip
 * the fsync at commit and could lose the last acknowledged batches on an OS crash. The cost is
 * one WAL fsync per batch: every batch is one transaction, so it is paid per batch, not per point.
 *
 * better-sqlite3 is synchronous: a write holds the event loop for one transaction (a few ms for
 * thousands of points); batches are bounded by sinks.batchMaxPoints. The gateway runs this sink
 * on its sink thread (sink-thread.ts), so that loop is not the one that runs MQTT ingest.
 */
export function createEmbeddedSink(options: EmbeddedSinkOptions): EmbeddedSink {
  const { config, kinds, logger, metrics } = options;
  let db: Database.Database | null = null;
  let closed = false;
  let statements: ReturnType<typeof prepare> | null = null;

  function prepare(handle: Database.Database) {
    const insertReading = handle.prepare<[string, string, number, number, string]>(
      'INSERT OR REPLACE INTO readings (kind, device, ts, seq, vals) VALUES (?, ?, ?, ?, ?)',
    );
    const insertWindow = handle.prepare<[string, string, number, number, string, number, number, string, number]>(
      'INSERT OR REPLACE INTO windows (kind, device, size_ms, start, grp, end_ms, slide_ms, vals, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const insertHealth = handle.prepare<[number, string]>('INSERT OR REPLACE INTO health (ts, vals) VALUES (?, ?)');
    const insertAlert = handle.prepare<[string, string, string, string, string, string, string, string, number | null, number | null, number | null, number | null, number, number, number | null, number, string]>(
      'INSERT OR REPLACE INTO alerts (id, rule, rule_kind, severity, state, kind, device_id, group_json, value, threshold, window_start, window_end, episode_start, fired_at, resolved_at, "offset", summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const insertBatch = (batch: SinkBatch): number => {
      assertKinds(batch);
      let points = 0;
      // Every raw reading the batch holds: sinks.writeRawReadings chose them when batching (a
      // batch logged under another setting is stored as it was batched, see SinkBatch.covers).
      for (const r of batch.readings) {
        insertReading.run(r.kind, r.deviceId, r.ts, r.seq, JSON.stringify(finiteValues(r.values)));
        points++;
      }
      for (const w of batch.windows) {
        insertWindow.run(w.kind, w.deviceId, w.sizeMs, w.start, groupKey(w.group), w.end, w.slideMs, JSON.stringify(finiteValues(w.values)), w.revision);
        points++;
      }
      for (const h of batch.health) {
        const values = finiteValues(h.values);
        if (Object.keys(values).length === 0) continue;
        insertHealth.run(h.ts, JSON.stringify(values));
        points++;
      }
      for (const a of batch.alerts ?? []) {
        insertAlert.run(a.id, a.rule, a.ruleKind, a.severity, a.state, a.kind, a.deviceId, groupKey(a.group), finiteOrNull(a.value), finiteOrNull(a.threshold), a.windowStart, a.windowEnd, a.episodeStart, a.firedAt, a.resolvedAt, a.offset, a.summary);
        points++;
      }
      return points;
    };
    // One transaction for all: one WAL commit, and each B-tree page written once for all of
    // them; a batch refused (an unknown kind) rolls back the ones before it.
    const writeBatches = handle.transaction((batches: Iterable<SinkBatch>): number => {
      let points = 0;
      for (const b of batches) points += insertBatch(b);
      return points;
    });
    return { writeBatches };
  }

  function open(): Database.Database {
    if (closed) throw new GatewayError('GW_ERR_SHUTTING_DOWN', 'the embedded sink is closed', { retryable: false });
    if (db !== null) return db;
    try {
      if (config.embeddedPath !== ':memory:') mkdirSync(dirname(config.embeddedPath), { recursive: true });
      const handle = new Database(config.embeddedPath);
      handle.pragma('journal_mode = WAL');
      handle.pragma('synchronous = FULL');
      handle.pragma('busy_timeout = 5000');
      handle.exec(SCHEMA);
      statements = prepare(handle);
      db = handle;
      return handle;
    } catch (err) {
      throw toSinkError(err, 'open');
    }
  }

  function assertKind(kind: string): void {
    if (!kinds.has(kind)) {
      throw new GatewayError('GW_ERR_SINK_WRITE', `unknown sensor kind "${kind}"`, { retryable: false, details: { kind } });
    }
  }

  /** One write, timed and counted: the batches in one transaction. */
  function writeAll(batches: Iterable<SinkBatch>): void {
    const startedAt = performance.now();
    try {
      open();
      const points = statements!.writeBatches(batches);
      metrics?.written(EMBEDDED_SINK_NAME, points, (performance.now() - startedAt) / 1000);
    } catch (err) {
      metrics?.failed(EMBEDDED_SINK_NAME, (performance.now() - startedAt) / 1000);
      throw toSinkError(err, 'write');
    }
  }

  function assertKinds(batch: SinkBatch): void {
    for (const r of batch.readings) assertKind(r.kind);
    for (const w of batch.windows) assertKind(w.kind);
  }

  return {
    name: EMBEDDED_SINK_NAME,

    async start() {
      open();
      logger?.info({ path: config.embeddedPath }, 'embedded store ready');
    },

    async write(batch) {
      writeAll([batch]);
    },

    async writeMany(batches) {
      writeAll(batches);
    },

    async queryWindows(query: WindowQuery): Promise<WindowResult[]> {
      const handle = open();
      const where = ['kind = ?', 'start >= ?', 'start < ?'];
      const params: Array<string | number> = [query.kind, query.from, query.to];
      if (query.deviceId !== undefined) {
        where.push('device = ?');
        params.push(query.deviceId);
      }
      if (query.sizeMs !== undefined) {
        where.push('size_ms = ?');
        params.push(query.sizeMs);
      }
      params.push(Math.max(0, Math.floor(query.limit)));
      try {
        const rows = handle
          .prepare<Array<string | number>, WindowRow>(
            `SELECT * FROM windows WHERE ${where.join(' AND ')} ORDER BY start, device, size_ms, grp LIMIT ?`,
          )
          .all(...params);
        return rows.map((row) => ({
          kind: row.kind,
          deviceId: row.device,
          sizeMs: row.size_ms,
          slideMs: row.slide_ms,
          start: row.start,
          end: row.end_ms,
          group: JSON.parse(row.grp) as Record<string, string>,
          values: JSON.parse(row.vals) as Record<string, number>,
          revision: row.revision,
        }));
      } catch (err) {
        throw toSinkError(err, 'query');
      }
    },

    async queryReadings(query: ReadingQuery): Promise<Reading[]> {
      const handle = open();
      const where = ['kind = ?', 'ts >= ?', 'ts < ?'];
      const params: Array<string | number> = [query.kind, query.from, query.to];
      if (query.deviceId !== undefined) {
        where.push('device = ?');
        params.push(query.deviceId);
      }
      params.push(Math.max(0, Math.floor(query.limit)));
      try {
        const rows = handle
          .prepare<Array<string | number>, ReadingRow>(`SELECT * FROM readings WHERE ${where.join(' AND ')} ORDER BY ts, device, seq LIMIT ?`)
          .all(...params);
        return rows.map((row) => ({
          kind: row.kind,
          deviceId: row.device,
          seq: row.seq,
          ts: row.ts,
          values: JSON.parse(row.vals) as Record<string, number | string>,
        }));
      } catch (err) {
        throw toSinkError(err, 'query');
      }
    },

    async queryAlerts(query: AlertQuery): Promise<AlertEvent[]> {
      const handle = open();
      const where = [`${ALERT_TIME_SQL} >= ?`, `${ALERT_TIME_SQL} < ?`];
      const params: Array<string | number> = [query.from, query.to];
      if (query.kind !== undefined) {
        where.push('kind = ?');
        params.push(query.kind);
      }
      if (query.device !== undefined) {
        where.push('device_id GLOB ?');
        params.push(sqliteGlob(query.device));
      }
      if (query.rule !== undefined) {
        where.push('rule = ?');
        params.push(query.rule);
      }
      if (query.severity !== undefined) {
        where.push('severity = ?');
        params.push(query.severity);
      }
      params.push(Math.max(0, Math.floor(query.limit)));
      try {
        const rows = handle
          .prepare<Array<string | number>, AlertRow>(`SELECT * FROM alerts WHERE ${where.join(' AND ')} ORDER BY ${ALERT_TIME_SQL}, "offset", state LIMIT ?`)
          .all(...params);
        return rows.map(rowToAlert);
      } catch (err) {
        throw toSinkError(err, 'query');
      }
    },

    applyRetention(nowMs) {
      const handle = open();
      const raw = retentionMs(config.rawRetention);
      const win = retentionMs(config.windowRetention);
      const purge = handle.transaction(() => ({
        readings: raw === null ? 0 : handle.prepare('DELETE FROM readings WHERE ts < ?').run(nowMs - raw).changes,
        windows: win === null ? 0 : handle.prepare('DELETE FROM windows WHERE start < ?').run(nowMs - win).changes,
        health: win === null ? 0 : handle.prepare('DELETE FROM health WHERE ts < ?').run(nowMs - win).changes,
        alerts: win === null ? 0 : handle.prepare(`DELETE FROM alerts WHERE ${ALERT_TIME_SQL} < ?`).run(nowMs - win).changes,
      }));
      return purge();
    },

    async close() {
      if (closed) return;
      closed = true;
      const handle = db;
      db = null;
      statements = null;
      // Closing checkpoints the WAL into the main file.
      handle?.close();
    },
  };
}
