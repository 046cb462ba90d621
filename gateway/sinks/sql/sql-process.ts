/**
 * Entry of a SQL query process (see sql-runner.ts): runs POST /v1/query's SELECTs on its own
 * read-only connection to the embedded store. A process, not a thread: a runaway query is inside
 * one sqlite3_step that nothing but SIGKILL interrupts (a worker's terminate() waits for it).
 */
import type Database from 'better-sqlite3';
import { checkReadOnlySelect, loadSqlParser } from './sql-guard.js';
import { ensureAlertsView, openQueryConnection, prepareReadOnly } from './sql-views.js';
import type { SqlProcessReply, SqlProcessRequest } from './sql-protocol.js';
import { isGatewayError } from '../../errors.js';

const path = process.argv[2];
if (path === undefined || process.send === undefined) throw new Error('sql-process.ts runs as a forked child: sql-process <store path>');
const send = process.send.bind(process);

let db: Database.Database | null = null;

function open(): Database.Database {
  db ??= openQueryConnection(path!);
  return db;
}

function cell(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'number' && !Number.isFinite(value)) return null;
  return value;
}

function run(request: SqlProcessRequest): SqlProcessReply {
  const startedAt = performance.now();
  checkReadOnlySelect(request.sql);
  let handle: Database.Database;
  try {
    handle = open();
  } catch (err) {
    return { id: request.id, ok: false, code: 'GW_ERR_SINK_UNAVAILABLE', message: `the embedded store cannot be opened for queries: ${(err as Error).message}` };
  }
  ensureAlertsView(handle);
  let statement: Database.Statement;
  try {
    statement = prepareReadOnly(handle, request.sql);
  } catch (err) {
    // SQLite's own refusal (no such table/column, more than one statement, a write): the query's fault.
    return { id: request.id, ok: false, code: 'GW_ERR_QUERY_INVALID', message: (err as Error).message };
  }
  const columns = statement.columns().map((c) => c.name);
  const rows: unknown[][] = [];
  let truncated = false;
  try {
    for (const row of statement.raw(true).iterate() as IterableIterator<unknown[]>) {
      if (rows.length >= request.maxRows) {
        truncated = true;
        break;
      }
      rows.push(row.map(cell));
    }
  } catch (err) {
    return { id: request.id, ok: false, code: 'GW_ERR_QUERY_INVALID', message: (err as Error).message };
  }
  const elapsedMs = Math.round((performance.now() - startedAt) * 10) / 10;
  const json = `{"columns":${JSON.stringify(columns)},"count":${rows.length},"truncated":${truncated},"elapsedMs":${elapsedMs},"rows":${JSON.stringify(rows)}}`;
  return { id: request.id, ok: true, count: rows.length, truncated, json };
}

process.on('message', (request: SqlProcessRequest) => {
  let reply: SqlProcessReply;
  try {
    reply = run(request);
  } catch (err) {
    if (isGatewayError(err)) {
      const position = err.details?.['position'];
      reply = { id: request.id, ok: false, code: err.code === 'GW_ERR_QUERY_INVALID' ? err.code : 'GW_ERR_SINK_QUERY', message: err.message, ...(position !== undefined ? { position: position as never } : {}) };
    } else {
      reply = { id: request.id, ok: false, code: 'GW_ERR_SINK_QUERY', message: (err as Error).message };
    }
  }
  send(reply);
});
// The gateway went away: so does this process.
process.on('disconnect', () => process.exit(0));
// Loaded (the parser too): the gateway starts counting a query's time from here.
loadSqlParser();
send({ ready: true });
