import { createRequire } from 'node:module';
import { GatewayError } from '../../errors.js';

/** Where in the SQL text a problem is: 0-based offset, 1-based line and column. */
export interface SqlPosition {
  readonly offset: number;
  readonly line: number;
  readonly column: number;
}

/** Longest SQL text accepted by POST /v1/query. */
export const MAX_SQL_CHARS = 16_384;

/**
 * Functions refused even inside a SELECT: the ones with effects outside the query (extension
 * loading, the file functions of SQLite's shell) and the ones that reconfigure the connection.
 * The read-only connection refuses them too (load_extension is not authorized, the file
 * functions do not exist); this keeps the refusal the same whatever the SQLite build.
 */
export const REFUSED_FUNCTIONS = new Set(['load_extension', 'writefile', 'readfile', 'edit', 'fts3_tokenizer', 'sqlite_dbpage', 'zipfile', 'shell']);

interface ParserLike {
  astify(sql: string): unknown;
}
interface PegSyntaxError extends Error {
  location?: { start?: { offset: number; line: number; column: number } };
  found?: string | null;
}

let parser: ParserLike | null = null;
/** Loads the grammar ahead of the first query (a query process does so at start). */
export function loadSqlParser(): void {
  sqliteParser();
}
function sqliteParser(): ParserLike {
  // The SQLite grammar only (the package's index bundles every dialect: several MB to load).
  if (parser === null) {
    const { Parser } = createRequire(import.meta.url)('node-sql-parser/build/sqlite.js') as { Parser: new () => ParserLike };
    parser = new Parser();
  }
  return parser;
}

function invalid(message: string, position?: SqlPosition): GatewayError {
  return new GatewayError('GW_ERR_QUERY_INVALID', message, position === undefined ? {} : { details: { position } });
}

/** The lower-case names of every function called anywhere in the syntax tree. */
function functionNames(node: unknown, out: Set<string>, depth = 0): Set<string> {
  if (depth > 10_000 || node === null || typeof node !== 'object') return out;
  if (Array.isArray(node)) {
    for (const child of node) functionNames(child, out, depth + 1);
    return out;
  }
  const n = node as Record<string, unknown>;
  if (n['type'] === 'function' || n['type'] === 'aggr_func') {
    const name = n['name'];
    const parts: string[] = [];
    const collect = (v: unknown): void => {
      if (typeof v === 'string') parts.push(v);
      else if (Array.isArray(v)) v.forEach(collect);
      else if (v !== null && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        if (typeof o['value'] === 'string') parts.push(o['value']);
        else if (o['name'] !== undefined) collect(o['name']);
      }
    };
    collect(name);
    if (parts.length > 0) out.add(parts.join('.').toLowerCase());
  }
  for (const value of Object.values(n)) functionNames(value, out, depth + 1);
  return out;
}

/**
 * Refuses anything but one SELECT (a WITH ... SELECT included), with GW_ERR_QUERY_INVALID and,
 * for a syntax error, its position. The connection the query then runs on is read-only as well
 * (`readonly` + `PRAGMA query_only`), and the prepared statement must return rows: three checks,
 * each of which alone refuses a write.
 */
export function checkReadOnlySelect(sql: string): void {
  if (sql.trim() === '') throw invalid('`sql` is empty');
  if (sql.length > MAX_SQL_CHARS) throw invalid(`\`sql\` is longer than ${MAX_SQL_CHARS} characters`);
  let ast: unknown;
  try {
    ast = sqliteParser().astify(sql);
  } catch (err) {
    const e = err as PegSyntaxError;
    const start = e.location?.start;
    if (start !== undefined) {
      const near = e.found === undefined ? e.message : e.found === null ? 'unexpected end of input' : `unexpected ${JSON.stringify(e.found)}`;
      throw invalid(`syntax error at line ${start.line}, column ${start.column}: ${near}`, { offset: start.offset, line: start.line, column: start.column });
    }
    throw invalid(`the SQL could not be parsed: ${e.message}`);
  }
  const statements = Array.isArray(ast) ? ast : [ast];
  if (statements.length !== 1) throw invalid(`one statement only (got ${statements.length}); nothing ran`);
  const type = (statements[0] as { type?: unknown } | null)?.type;
  if (type !== 'select') throw invalid(`only SELECT is allowed (got ${String(type).toUpperCase()}); nothing ran`);
  for (const name of functionNames(statements[0], new Set())) {
    const bare = name.split('.').pop() as string;
    if (REFUSED_FUNCTIONS.has(bare)) throw invalid(`the function ${bare}() is not allowed; nothing ran`);
  }
}
