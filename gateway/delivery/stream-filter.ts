import { GatewayError } from '../errors.js';
import { SEVERITIES, type Severity } from '../wire/alert.js';
import type { EventFields } from './event-fields.js';
import { compileWhere, type Predicate } from './where-filter.js';

export type StreamSource = 'alerts' | 'windows';

/** What a stream delivers: every part set must hold (AND); an empty list / null = no restriction. */
export interface FilterSpec {
  readonly kinds: readonly string[];
  /** Device id globs: `*` any run of characters, `?` one character. */
  readonly devices: readonly string[];
  /** Alerts only. */
  readonly rules: readonly string[];
  /** Alerts only. */
  readonly minSeverity: Severity | null;
  /** SQL WHERE expression (where-filter.ts). */
  readonly where: readonly string[];
}

export const EMPTY_FILTER: FilterSpec = { kinds: [], devices: [], rules: [], minSeverity: null, where: [] };

export interface CompiledFilter {
  /** Canonical text of the spec: clients with the same key share one evaluation per event. */
  readonly key: string;
  readonly matches: Predicate;
}

/** Device globs as regular expressions: only `*` and `?` are special. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '[\\s\\S]*';
    else if (ch === '?') re += '[\\s\\S]';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'u');
}

export function hasWildcard(glob: string): boolean {
  return glob.includes('*') || glob.includes('?');
}

/**
 * Whether every device id `inner` matches also matches `outer` (sound, not complete): equal
 * globs; a literal id that `outer` matches; or an `outer` of the form `prefix*` (no other
 * wildcard) and an `inner` whose text before its first wildcard starts with that prefix.
 */
export function globWithin(inner: string, outer: string): boolean {
  if (inner === outer) return true;
  if (!hasWildcard(inner)) return globToRegExp(outer).test(inner);
  if (outer.endsWith('*') && !hasWildcard(outer.slice(0, -1))) {
    const prefix = outer.slice(0, -1);
    const firstWild = inner.search(/[*?]/);
    return inner.slice(0, firstWild).startsWith(prefix);
  }
  return false;
}

export function severityAtLeast(s: Severity, min: Severity): boolean {
  return SEVERITIES.indexOf(s) >= SEVERITIES.indexOf(min);
}

/** Compiles a spec for `source`; a part that does not apply to it, or a bad `where`, is refused with GW_ERR_FILTER_INVALID. */
export function compileFilter(spec: FilterSpec, source: StreamSource): CompiledFilter {
  if (source === 'windows' && (spec.rules.length > 0 || spec.minSeverity !== null)) {
    throw new GatewayError('GW_ERR_FILTER_INVALID', '`rule` and `minSeverity` filter alerts only, not windows');
  }
  const tests: Predicate[] = [];
  if (spec.kinds.length > 0) {
    const kinds = new Set(spec.kinds);
    tests.push((f) => typeof f['kind'] === 'string' && kinds.has(f['kind']));
  }
  if (spec.devices.length > 0) {
    const literal = new Set(spec.devices.filter((d) => !hasWildcard(d)));
    const globs = spec.devices.filter(hasWildcard).map(globToRegExp);
    tests.push((f) => {
      const d = f['deviceId'];
      if (typeof d !== 'string') return false;
      if (literal.has(d)) return true;
      for (const g of globs) if (g.test(d)) return true;
      return false;
    });
  }
  if (spec.rules.length > 0) {
    const rules = new Set(spec.rules);
    tests.push((f) => typeof f['rule'] === 'string' && rules.has(f['rule']));
  }
  if (spec.minSeverity !== null) {
    const min = spec.minSeverity;
    tests.push((f) => typeof f['severity'] === 'string' && (SEVERITIES as readonly string[]).includes(f['severity']) && severityAtLeast(f['severity'] as Severity, min));
  }
  for (const w of spec.where) tests.push(compileWhere(w));
  const key = JSON.stringify([source, [...spec.kinds].sort(), [...spec.devices].sort(), [...spec.rules].sort(), spec.minSeverity, spec.where]);
  if (tests.length === 0) return { key, matches: () => true };
  if (tests.length === 1) return { key, matches: tests[0]! };
  return {
    key,
    matches: (f: EventFields) => {
      for (const t of tests) if (!t(f)) return false;
      return true;
    },
  };
}

/** Every spec at once (AND): a static stream, the query's narrowing and the token's claims. */
export function compileFilters(specs: readonly FilterSpec[], source: StreamSource): CompiledFilter {
  const parts = specs.map((s) => compileFilter(s, source));
  if (parts.length === 1) return parts[0]!;
  const key = parts.map((p) => p.key).join('&');
  return {
    key,
    matches: (f) => {
      for (const p of parts) if (!p.matches(f)) return false;
      return true;
    },
  };
}
