import sqlParser from 'node-sql-parser';
import { GatewayError } from '../errors.js';
import type { EventFields, FieldValue } from './event-fields.js';

/**
 * `where=` filters: an expression in SQL WHERE syntax over an event's fields (event-fields.ts),
 * parsed by node-sql-parser (MySQL dialect) and compiled to a closure tree. Nothing is evaluated
 * as code. Supported: AND, OR, NOT, parentheses; = != <> < <= > >=; IN / NOT IN (list);
 * BETWEEN / NOT BETWEEN; LIKE / NOT LIKE (% and _, case-sensitive, \ escapes); IS [NOT] NULL;
 * field names (plain or in backticks); numbers, 'strings' ("double quotes" are strings too, as in
 * MySQL), TRUE, FALSE, NULL. SQL's three-valued logic: a comparison with an absent field (NULL),
 * or between a number and a string, is unknown, and an event matches only when the whole
 * expression is true. Anything else (arithmetic, functions, subqueries, a second statement, ORDER
 * BY, ...) is refused with GW_ERR_FILTER_INVALID naming the part.
 */
export type Predicate = (fields: EventFields) => boolean;

/** Longest `where=` text, and most AST nodes it may have: bounds the compile and each evaluation. */
export const MAX_WHERE_LENGTH = 2000;
const MAX_NODES = 256;
const PREFIX = 'SELECT * FROM t WHERE ';

type Tri = boolean | null;
type Cond = (f: EventFields) => Tri;
type Val = (f: EventFields) => FieldValue;

interface Node {
  type?: string;
  operator?: string;
  left?: Node;
  right?: Node;
  value?: unknown;
  column?: unknown;
  table?: unknown;
  name?: unknown;
  args?: Node;
  expr?: Node;
  ast?: unknown;
}

function invalid(message: string): GatewayError {
  return new GatewayError('GW_ERR_FILTER_INVALID', `where: ${message}`);
}

const parser = new sqlParser.Parser();
const CLAUSES: readonly (readonly [string, string])[] = [
  ['groupby', 'GROUP BY'],
  ['having', 'HAVING'],
  ['orderby', 'ORDER BY'],
  ['limit', 'LIMIT'],
  ['window', 'WINDOW'],
  ['_next', 'a second query (UNION)'],
  ['union', 'a second query (UNION)'],
  ['with', 'WITH'],
  ['distinct', 'DISTINCT'],
  ['into', 'INTO'],
];

export function compileWhere(text: string): Predicate {
  if (text.length > MAX_WHERE_LENGTH) throw invalid(`longer than ${MAX_WHERE_LENGTH} characters`);
  if (text.trim() === '') throw invalid('is empty');
  let ast: unknown;
  try {
    ast = parser.astify(PREFIX + text, { database: 'MySQL' });
  } catch (err) {
    const e = err as { message?: string; found?: unknown; location?: { start?: { offset?: number } } };
    const at = e.location?.start?.offset;
    const where = typeof at === 'number' ? ` at character ${Math.max(0, at - PREFIX.length) + 1}` : '';
    const what = 'found' in e ? (e.found === null ? 'unexpected end' : `unexpected ${JSON.stringify(e.found)}`) : oneLine(e.message ?? String(err));
    throw invalid(`syntax error${where}: ${what}`);
  }
  if (Array.isArray(ast)) {
    if (ast.length !== 1) throw invalid('must be one expression (no ";" and no second statement)');
    ast = ast[0];
  }
  const select = ast as Record<string, unknown>;
  for (const [clause, name] of CLAUSES) {
    const v = select[clause];
    if (v !== null && v !== undefined && !(clause === 'into' && (v as { position?: unknown }).position === null)) {
      throw invalid(`only a condition is allowed, not ${name}`);
    }
  }
  if (select['where'] === null || select['where'] === undefined) throw invalid('no condition found');
  const counter = { nodes: 0 };
  const cond = condition(select['where'] as Node, counter, 0);
  return (fields) => cond(fields) === true;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').slice(0, 200);
}

function count(counter: { nodes: number }, depth: number): void {
  counter.nodes += 1;
  if (counter.nodes > MAX_NODES) throw invalid(`more than ${MAX_NODES} terms`);
  if (depth > 64) throw invalid('nested too deeply');
}

function condition(n: Node, counter: { nodes: number }, depth: number): Cond {
  count(counter, depth);
  const op = typeof n.operator === 'string' ? n.operator.toUpperCase() : undefined;
  if (n.type === 'binary_expr' && op !== undefined) {
    switch (op) {
      case 'AND':
      case '&&': {
        const a = condition(n.left!, counter, depth + 1);
        const b = condition(n.right!, counter, depth + 1);
        return (f) => {
          const x = a(f);
          if (x === false) return false;
          const y = b(f);
          if (y === false) return false;
          return x === null || y === null ? null : true;
        };
      }
      case 'OR':
      case '||': {
        const a = condition(n.left!, counter, depth + 1);
        const b = condition(n.right!, counter, depth + 1);
        return (f) => {
          const x = a(f);
          if (x === true) return true;
          const y = b(f);
          if (y === true) return true;
          return x === null || y === null ? null : false;
        };
      }
      case '=':
      case '!=':
      case '<>':
      case '<':
      case '<=':
      case '>':
      case '>=': {
        const a = value(n.left!, counter, depth + 1);
        const b = value(n.right!, counter, depth + 1);
        const test = COMPARE[op]!;
        return (f) => {
          const c = compare(a(f), b(f));
          return c === null ? null : test(c);
        };
      }
      case 'IN':
      case 'NOT IN': {
        const a = value(n.left!, counter, depth + 1);
        const list = valueList(n.right, 'IN', counter, depth + 1);
        const negate = op === 'NOT IN';
        return (f) => {
          const x = a(f);
          let unknown = false;
          for (const item of list) {
            const c = compare(x, item(f));
            if (c === 0) return !negate;
            if (c === null) unknown = true;
          }
          return unknown ? null : negate;
        };
      }
      case 'BETWEEN':
      case 'NOT BETWEEN': {
        const a = value(n.left!, counter, depth + 1);
        const bounds = valueList(n.right, 'BETWEEN', counter, depth + 1);
        if (bounds.length !== 2) throw invalid('BETWEEN needs two bounds');
        const [lo, hi] = bounds as [Val, Val];
        const negate = op === 'NOT BETWEEN';
        return (f) => {
          const x = a(f);
          const c1 = compare(x, lo(f));
          const c2 = compare(x, hi(f));
          const r = c1 === null || c2 === null ? (c1 !== null && c1 < 0) || (c2 !== null && c2 > 0) ? false : null : c1 >= 0 && c2 <= 0;
          return r === null ? null : negate ? !r : r;
        };
      }
      case 'LIKE':
      case 'NOT LIKE': {
        const a = value(n.left!, counter, depth + 1);
        const pattern = n.right;
        if (pattern === undefined || !isStringLiteral(pattern)) throw invalid('LIKE needs a quoted pattern');
        const re = likeToRegExp(String(pattern.value));
        const negate = op === 'NOT LIKE';
        return (f) => {
          const x = a(f);
          if (x === null) return null;
          if (typeof x !== 'string') return null;
          return re.test(x) !== negate;
        };
      }
      case 'IS':
      case 'IS NOT': {
        if (n.right?.type !== 'null') throw invalid(`only ${op} NULL is supported`);
        const a = value(n.left!, counter, depth + 1);
        const negate = op === 'IS NOT';
        return (f) => (a(f) === null) !== negate;
      }
      default:
        throw invalid(`operator ${op} is not supported`);
    }
  }
  if ((n.type === 'unary_expr' && (op === 'NOT' || op === '!')) || isNotFunction(n)) {
    const arg = n.type === 'unary_expr' ? n.expr! : (n.args as { value?: Node[] }).value![0]!;
    const a = condition(arg, counter, depth + 1);
    return (f) => {
      const x = a(f);
      return x === null ? null : !x;
    };
  }
  if (n.type === 'bool') {
    const b = n.value === true;
    return () => b;
  }
  if (n.type === 'column_ref') throw invalid(`field ${columnName(n)} alone is not a condition; compare it (e.g. ${columnName(n)} = 'x')`);
  throw invalid(`${describe(n)} is not a condition`);
}

function isNotFunction(n: Node): boolean {
  if (n.type !== 'function') return false;
  const name = n.name as { name?: { value?: unknown }[] } | string | undefined;
  const text = typeof name === 'string' ? name : name?.name?.map((p) => String(p.value)).join('.');
  const args = (n.args as { value?: unknown[] } | undefined)?.value;
  return typeof text === 'string' && text.toUpperCase() === 'NOT' && Array.isArray(args) && args.length === 1;
}

function isStringLiteral(n: Node): boolean {
  return n.type === 'single_quote_string' || n.type === 'double_quote_string' || n.type === 'string' || n.type === 'natural_string';
}

function columnName(n: Node): string {
  const c = n.column as unknown;
  if (typeof c === 'string') return c;
  const inner = (c as { expr?: { value?: unknown } } | null)?.expr?.value;
  if (typeof inner === 'string') return inner;
  throw invalid('a field name could not be read');
}

function describe(n: Node): string {
  if (n.type === 'function') return 'a function call';
  if (n.ast !== undefined || n.type === 'select') return 'a subquery';
  if (n.type === 'binary_expr') return `operator ${String(n.operator)}`;
  return `${String(n.type ?? 'this part')}`;
}

const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

function value(n: Node, counter: { nodes: number }, depth: number): Val {
  count(counter, depth);
  if (n.type === 'column_ref') {
    if (n.table !== null && n.table !== undefined) throw invalid(`qualified field ${String(n.table)}.${columnName(n)} is not supported`);
    const name = columnName(n);
    if (name === '*') throw invalid('* is not a field');
    if (!FIELD_NAME.test(name)) throw invalid(`bad field name ${JSON.stringify(name)}`);
    return (f) => {
      const v = f[name];
      return v === undefined ? null : v;
    };
  }
  if (n.type === 'number') {
    const v = typeof n.value === 'number' ? n.value : Number(n.value);
    if (!Number.isFinite(v)) throw invalid(`bad number ${String(n.value)}`);
    return () => v;
  }
  if (isStringLiteral(n)) {
    const v = String(n.value);
    return () => v;
  }
  if (n.type === 'bool') {
    const v = n.value === true;
    return () => v;
  }
  if (n.type === 'null') return () => null;
  if (n.type === 'binary_expr' && ['+', '-', '*', '/', '%', 'DIV', 'MOD'].includes(String(n.operator).toUpperCase())) {
    throw invalid(`arithmetic (${String(n.operator)}) is not supported`);
  }
  throw invalid(`${describe(n)} is not supported as a value`);
}

function valueList(n: Node | undefined, what: string, counter: { nodes: number }, depth: number): Val[] {
  if (n === undefined || n.type !== 'expr_list' || !Array.isArray(n.value)) throw invalid(`${what} needs a list of values`);
  return (n.value as Node[]).map((item) => value(item, counter, depth + 1));
}

/** Order of two values, or null when unknown (NULL on either side, or different types). */
function compare(a: FieldValue, b: FieldValue): number | null {
  if (a === null || b === null) return null;
  if (typeof a !== typeof b) return null;
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

const COMPARE: Record<string, (c: number) => boolean> = {
  '=': (c) => c === 0,
  '!=': (c) => c !== 0,
  '<>': (c) => c !== 0,
  '<': (c) => c < 0,
  '<=': (c) => c <= 0,
  '>': (c) => c > 0,
  '>=': (c) => c >= 0,
};

export function likeToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\' && i + 1 < pattern.length) {
      re += escapeRe(pattern[++i]!);
    } else if (ch === '%') re += '[\\s\\S]*';
    else if (ch === '_') re += '[\\s\\S]';
    else re += escapeRe(ch);
  }
  return new RegExp(`^${re}$`, 'u');
}

function escapeRe(ch: string): string {
  return ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
