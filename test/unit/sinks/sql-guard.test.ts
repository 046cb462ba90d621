import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isGatewayError } from '../../../gateway/errors.js';
import { createEmbeddedSink } from '../../../gateway/sinks/embedded-sink.js';
import { checkReadOnlySelect } from '../../../gateway/sinks/sql/sql-guard.js';
import { ALERT_COLUMNS, ensureAlertsView, openQueryConnection, prepareReadOnly } from '../../../gateway/sinks/sql/sql-views.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { heartRateKind } from '../../../gateway/kinds/heart-rate.js';
import { mulberry32 } from '../../helpers/random.js';
import { sqlWriteFiles, sqlWrites } from '../../helpers/sql-writes.js';

const SQL_WRITES = sqlWrites('/nonexistent-dir');
import { baseSinksConfig } from '../../integration/sinks/sink-contract.js';

/** Each of POST /v1/query's layers refuses every write on its own: the parser check, and the connection. */
describe('the parser check (checkReadOnlySelect)', () => {
  it('refuses every write, and each of them behind or before a SELECT', () => {
    for (const sql of SQL_WRITES) {
      for (const text of [sql, `SELECT 1; ${sql}`, `${sql}; SELECT 1`]) {
        let err: unknown = null;
        try {
          checkReadOnlySelect(text);
        } catch (e) {
          err = e;
        }
        expect(isGatewayError(err, 'GW_ERR_QUERY_INVALID'), text).toBe(true);
      }
    }
  });

  it('lets SELECTs through: joins, WITH, UNION, subqueries, aggregates, json functions', () => {
    for (const sql of [
      'SELECT 1',
      "SELECT device_id, json_extract(fields, '$.bpm') AS bpm FROM readings WHERE ts > 0 ORDER BY ts DESC LIMIT 10",
      'WITH d AS (SELECT device_id FROM readings) SELECT count(*) FROM d',
      'SELECT a.kind FROM readings a JOIN windows b ON a.device_id = b.device_id',
      'SELECT kind FROM readings UNION SELECT kind FROM windows',
      'SELECT * FROM windows WHERE window_start IN (SELECT max(window_start) FROM windows)',
      'SELECT 1;',
    ]) {
      expect(() => checkReadOnlySelect(sql), sql).not.toThrow();
    }
  });

  it('names the line and column of a syntax error', () => {
    const random = mulberry32(42);
    for (let i = 0; i < 50; i++) {
      const line = 1 + Math.floor(random() * 5);
      const sql = [...Array.from({ length: line - 1 }, () => 'SELECT 1 AS x UNION'), `${' '.repeat(Math.floor(random() * 8))}SELECT FROM FROM`].join('\n');
      try {
        checkReadOnlySelect(sql);
        throw new Error(`accepted: ${sql}`);
      } catch (err) {
        expect(isGatewayError(err, 'GW_ERR_QUERY_INVALID')).toBe(true);
        const position = (err as { details?: { position?: { line: number; column: number; offset: number } } }).details?.position;
        expect(position?.line, sql).toBe(line);
        expect(sql.slice(position!.offset)).toMatch(/FROM/);
      }
    }
  });
});

describe('the query connection (openQueryConnection + prepareReadOnly), without the parser check', () => {
  let dir = '';
  let path = '';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pg-sql-'));
    path = join(dir, 'store.sqlite');
    const sink = createEmbeddedSink({ config: baseSinksConfig({ embeddedPath: path }), kinds: createKindRegistry([heartRateKind]) });
    await sink.start();
    await sink.write({ readings: [{ kind: 'heart-rate', deviceId: 'd1', seq: 1, ts: 1000, values: { bpm: 70 } }], windows: [], health: [] });
    await sink.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses every write run straight on it, and the store and the views stay as they were', () => {
    const handle = openQueryConnection(path);
    const ran: string[] = [];
    const files = sqlWriteFiles(dir);
    const writes = sqlWrites(dir);
    // Twice over: the second pass runs after anything the first let through (e.g. query_only OFF).
    for (const sql of [...writes, ...writes]) {
      try {
        // Whatever it prepared would be run, rows or not.
        const statement = prepareReadOnly(handle, sql);
        if (statement.reader) statement.all();
        else statement.run();
        ran.push(sql);
      } catch {
        // refused
      }
    }
    expect(ran).toEqual([]);
    expect(handle.prepare('SELECT device_id, ts FROM readings').all()).toEqual([{ device_id: 'd1', ts: 1000 }]);
    for (const f of files) expect(existsSync(f), f).toBe(false);
    handle.close();
  });

  it('on its own (no statement check at all), keeps the store file unchanged whatever runs on it', () => {
    const handle = openQueryConnection(path);
    // Without the statement check VACUUM INTO may well write its copy: only the store file matters here.
    mkdirSync(join(dir, 'alone'));
    const writes = sqlWrites(join(dir, 'alone'));
    for (const sql of [...writes, ...writes]) {
      try {
        const statement = handle.prepare(sql);
        if (statement.reader) statement.all();
        else statement.run();
      } catch {
        // refused by SQLite
      }
    }
    handle.close();
    const check = new Database(path, { readonly: true });
    expect(check.prepare('SELECT device, ts, vals FROM readings').all()).toEqual([{ device: 'd1', ts: 1000, vals: '{"bpm":70}' }]);
    expect(check.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map((r) => (r as { name: string }).name)).toEqual(['alerts', 'health', 'readings', 'windows']);
    expect(check.pragma('journal_mode', { simple: true })).toBe('wal');
    check.close();
  });

  it('has an alerts view once the store has an alerts table', () => {
    // A store written before alerts were stored has no alerts table.
    const old = new Database(path);
    old.exec('DROP TABLE alerts');
    old.close();
    const handle = openQueryConnection(path);
    expect(ensureAlertsView(handle)).toBe(false);
    const writer = new Database(path);
    writer.exec(`CREATE TABLE alerts (${ALERT_COLUMNS.map((c) => `"${c}"`).join(', ')}, extra TEXT)`);
    writer.prepare(`INSERT INTO alerts (id, rule, state, "offset") VALUES ('a1', 'hr-high', 'firing', 42)`).run();
    writer.close();
    expect(ensureAlertsView(handle)).toBe(true);
    const rows = prepareReadOnly(handle, 'SELECT * FROM alerts').all() as Array<Record<string, unknown>>;
    expect(Object.keys(rows[0]!)).toEqual([...ALERT_COLUMNS]);
    expect(rows[0]).toMatchObject({ id: 'a1', rule: 'hr-high', state: 'firing', offset: 42 });
    handle.close();
  });
});
