import Database from 'better-sqlite3';
/**
 * The views POST /v1/query sees on the embedded store. They are TEMP views of the query
 * connection, so they shadow the store's tables of the same name (SQLite looks names up in
 * `temp` first) and cost the store file nothing; `main.readings` etc. still name the raw tables.
 * Times are ms since the epoch; `time` is the same instant as ISO 8601 UTC text.
 */
const iso = (column: string): string => `strftime('%Y-%m-%dT%H:%M:%fZ', ${column} / 1000.0, 'unixepoch')`;

export const SQL_VIEWS: Readonly<Record<string, string>> = {
  readings: `SELECT kind, device AS device_id, ts, ${iso('ts')} AS time, seq, vals AS fields FROM main.readings`,
  windows:
    `SELECT kind, device AS device_id, size_ms, slide_ms, start AS window_start, end_ms AS window_end, ${iso('start')} AS time,` +
    ` grp AS group_by, vals AS fields, revision FROM main.windows`,
};

/** The alerts view, over the store's alerts table when it has one (created by the alerts tier). */
export const ALERT_COLUMNS = [
  'id', 'rule', 'rule_kind', 'severity', 'state', 'kind', 'device_id', 'value', 'threshold',
  'window_start', 'window_end', 'episode_start', 'fired_at', 'resolved_at', 'offset', 'summary',
] as const;
export const ALERTS_VIEW = `SELECT ${ALERT_COLUMNS.map((c) => `"${c}"`).join(', ')} FROM main.alerts`;

/**
 * The connection POST /v1/query runs on: opened read-only (SQLite refuses every write to the
 * store file), the views created, then `PRAGMA query_only` (no write at all, temp objects
 * included). The alerts view follows later with {@link ensureAlertsView}.
 */
export function openQueryConnection(path: string): Database.Database {
  const handle = new Database(path, { readonly: true, fileMustExist: true });
  try {
    handle.pragma('busy_timeout = 1000');
    for (const [name, select] of Object.entries(SQL_VIEWS)) handle.exec(`CREATE TEMP VIEW ${name} AS ${select}`);
    ensureAlertsView(handle);
    handle.pragma('query_only = ON');
    return handle;
  } catch (err) {
    handle.close();
    throw err;
  }
}

/** Creates the alerts view once the store has an alerts table (it may appear after the connection opened); true when it exists. */
export function ensureAlertsView(handle: Database.Database): boolean {
  if (handle.prepare("SELECT 1 FROM temp.sqlite_master WHERE type = 'view' AND name = 'alerts'").get() !== undefined) return true;
  if (handle.prepare("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'alerts'").get() === undefined) return false;
  const queryOnly = handle.pragma('query_only', { simple: true }) === 1;
  if (queryOnly) handle.pragma('query_only = OFF');
  try {
    handle.exec(`CREATE TEMP VIEW alerts AS ${ALERTS_VIEW}`);
    return true;
  } finally {
    if (queryOnly) handle.pragma('query_only = ON');
  }
}

/**
 * Prepares `sql` on a query connection if it is one statement that only reads and returns rows
 * (SQLite's own sqlite3_stmt_readonly, and a statement with result columns); throws otherwise.
 * Without this, statements the read-only connection lets through (ATTACH ':memory:', SAVEPOINT,
 * REINDEX, a PRAGMA that turns query_only off, then VACUUM INTO a new file) would run.
 */
export function prepareReadOnly(handle: Database.Database, sql: string): Database.Statement {
  const statement = handle.prepare(sql);
  if (!statement.reader || !statement.readonly) throw new Error('only a SELECT that reads and returns rows is allowed; nothing ran');
  return statement;
}
