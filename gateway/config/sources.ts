/**
 * ingest.sources: topic patterns and payload paths, parsed and checked against the kinds (every
 * problem listed). Ingest compiles the checked sources into matchers (ingest/source-mapping.ts).
 */
import type { KindDescriptor } from '../kinds/kind-descriptor.js';
import type { SourceDefinition } from './config.js';

/** One segment of a topic pattern: a literal, `+` (any one segment, ignored) or a named segment. */
export type PatternSegment = { readonly literal: string } | { readonly any: true } | { readonly name: string };

const SEGMENT_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
/** The named segment that is the device id, bound to the device's identity like sensors/<kind>/<id>. */
export const DEVICE_SEGMENT = 'deviceId';

/** The segments of `pattern`, or the problems that make it unusable. */
export function parseTopicPattern(pattern: string): { segments: PatternSegment[]; problems: string[] } {
  const problems: string[] = [];
  const segments: PatternSegment[] = [];
  const names = new Set<string>();
  for (const part of pattern.split('/')) {
    if (part === '+') segments.push({ any: true });
    else if (part.startsWith('{') && part.endsWith('}')) {
      const name = part.slice(1, -1);
      if (!SEGMENT_NAME.test(name)) problems.push(`segment "${part}": a name must match ${SEGMENT_NAME.source}`);
      else if (names.has(name)) problems.push(`segment "${part}" appears twice`);
      names.add(name);
      segments.push({ name });
    } else if (part === '#') problems.push('"#" is not supported: a pattern has a fixed number of segments (use + for one segment)');
    else if (/[+#{}]/.test(part)) problems.push(`segment "${part}": +, #, { and } may only stand alone as a whole segment`);
    else if (part === '') problems.push('empty segment (a pattern neither starts nor ends with / nor has //)');
    else segments.push({ literal: part });
  }
  if (!names.has(DEVICE_SEGMENT)) problems.push(`needs a {${DEVICE_SEGMENT}} segment (the device it comes from)`);
  const first = segments[0];
  if (first !== undefined && 'literal' in first && (first.literal === 'sensors' || first.literal.startsWith('$'))) {
    problems.push(`"${first.literal}/..." topics are the gateway's own; a source maps other topics`);
  }
  return { segments, problems };
}

/** A payload path: dot-separated object keys; a key of digits indexes an array. */
export function parsePath(path: string): { keys: string[]; problems: string[] } {
  const keys = path.split('.');
  const problems = keys.some((k) => k === '') ? [`path "${path}" has an empty key`] : [];
  return { keys, problems };
}

/** Checks every source against the kinds it names; pushes each problem as `ingest.sources.<i>...: ...`. */
export function checkSources(sources: readonly SourceDefinition[], kinds: ReadonlyMap<string, KindDescriptor>, problems: string[], reportedKinds: ReadonlySet<string> = new Set()): void {
  const seen = new Map<string, number>();
  sources.forEach((s, i) => {
    const at = `ingest.sources.${i}`;
    for (const p of parseTopicPattern(s.topic).problems) problems.push(`${at}.topic: ${p}`);
    const earlier = seen.get(s.topic);
    if (earlier !== undefined) problems.push(`${at}.topic: the same pattern as ingest.sources.${earlier} (the first that matches wins, so this one never would)`);
    seen.set(s.topic, i);
    const kind = kinds.get(s.kind);
    // A kind with problems of its own was told already: only the source's own mistakes are told.
    if (kind === undefined && !reportedKinds.has(s.kind)) problems.push(`${at}.kind: unknown kind "${s.kind}" (known: ${[...kinds.keys()].join(', ')})`);
    for (const [field, path] of Object.entries(s.fields)) {
      if (kind !== undefined && !Object.hasOwn(kind.fields, field)) problems.push(`${at}.fields.${field}: kind ${s.kind} has no field "${field}"`);
      for (const p of parsePath(path).problems) problems.push(`${at}.fields.${field}: ${p}`);
    }
    if (kind !== undefined) {
      for (const [field, spec] of Object.entries(kind.fields)) {
        if (spec.required && !Object.hasOwn(s.fields, field)) problems.push(`${at}.fields: the required field "${field}" of kind ${s.kind} has no path`);
      }
    }
    if (s.tsPath !== null) {
      for (const p of parsePath(s.tsPath).problems) problems.push(`${at}.tsPath: ${p}`);
      if (s.tsFormat === null) problems.push(`${at}.tsFormat: tsPath needs its format (ms, s or iso8601)`);
    } else if (s.tsFormat !== null) problems.push(`${at}.tsFormat: given without tsPath (without tsPath the event time is the arrival time)`);
    if (s.seqPath !== null) for (const p of parsePath(s.seqPath).problems) problems.push(`${at}.seqPath: ${p}`);
  });
}
