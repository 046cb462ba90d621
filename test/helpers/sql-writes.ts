/**
 * Statements that write, attach, reconfigure or reach outside the store: every one must be
 * refused by POST /v1/query. Files they name are under `dir` (a test's own temp directory), so
 * a test can check that none of them was created.
 */
export function sqlWrites(dir: string): string[] {
  return SQL_WRITE_TEMPLATES.map((s) => s.replaceAll('$DIR', dir));
}
/** The files the statements of sqlWrites(dir) would create. */
export function sqlWriteFiles(dir: string): string[] {
  return ['attack.sqlite', 'copy.sqlite', 'written'].map((f) => `${dir}/${f}`);
}

const SQL_WRITE_TEMPLATES: readonly string[] = [
  "INSERT INTO readings (kind, device, ts, seq, vals) VALUES ('heart-rate', 'x', 1, 1, '{}')",
  "INSERT INTO main.readings SELECT * FROM main.readings",
  "REPLACE INTO windows (kind) VALUES ('x')",
  "UPDATE readings SET seq = seq + 1000",
  "UPDATE main.readings SET vals = '{}'",
  'DELETE FROM readings',
  'DELETE FROM main.windows',
  "ATTACH DATABASE '$DIR/attack.sqlite' AS evil",
  "ATTACH ':memory:' AS m",
  'DETACH DATABASE main',
  'PRAGMA query_only = OFF',
  'PRAGMA journal_mode = DELETE',
  'PRAGMA writable_schema = 1',
  'CREATE TABLE pwned (a)',
  'CREATE TEMP TABLE pwned (a)',
  'DROP TABLE readings',
  'DROP VIEW readings',
  'ALTER TABLE readings RENAME TO r2',
  'VACUUM',
  "VACUUM INTO '$DIR/copy.sqlite'",
  'REINDEX',
  'ANALYZE',
  'BEGIN IMMEDIATE',
  'SAVEPOINT s',
  "SELECT load_extension('/tmp/evil.so')",
  "SELECT count(*) FROM readings WHERE load_extension('/tmp/evil.so') IS NULL",
  "SELECT writefile('$DIR/written', 'x')",
  "SELECT readfile('/etc/passwd')",
  'WITH x AS (SELECT 1) DELETE FROM readings',
  'WITH x AS (SELECT 1) INSERT INTO readings SELECT * FROM main.readings',
];
