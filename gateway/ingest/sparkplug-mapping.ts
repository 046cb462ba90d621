/**
 * Which Sparkplug B metrics become which fields of which kind: the one place the mapping lives
 * (ingest.sparkplug.kind and ingest.sparkplug.fields), so that it can point at any kind the
 * registry holds, built in or defined in config.
 */
import type { SparkplugConfig } from '../config/config.js';
import { GatewayError } from '../errors.js';
import type { FieldSpec, KindDescriptor } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { SparkplugValue } from './sparkplug-payload.js';

export interface SparkplugMapping {
  readonly kind: KindDescriptor;
  /** Metric name -> field of the kind. */
  readonly fieldOf: ReadonlyMap<string, string>;
}

/** The mapping of ingest.sparkplug; every problem of it in one config error. */
export function createSparkplugMapping(config: SparkplugConfig, kinds: KindRegistry): SparkplugMapping {
  const kind = kinds.get(config.kind);
  if (kind === undefined) {
    throw new GatewayError('GW_ERR_CONFIG_INVALID', `ingest.sparkplug.kind: unknown kind "${config.kind}" (known: ${[...kinds.keys()].join(', ')})`);
  }
  const problems: string[] = [];
  const fieldOf = new Map<string, string>();
  // By default every field of the kind comes from the metric of the same name.
  const fields: Record<string, string> = Object.keys(config.fields).length > 0 ? config.fields : Object.fromEntries(Object.keys(kind.fields).map((f) => [f, f]));
  for (const [field, metric] of Object.entries(fields)) {
    if (kind.fields[field] === undefined) problems.push(`ingest.sparkplug.fields.${field}: kind "${kind.name}" has no field "${field}" (fields: ${Object.keys(kind.fields).join(', ')})`);
    else if (fieldOf.has(metric)) problems.push(`ingest.sparkplug.fields.${field}: metric "${metric}" is already mapped to field "${fieldOf.get(metric)}"`);
    else fieldOf.set(metric, field);
  }
  if (problems.length > 0) throw new GatewayError('GW_ERR_CONFIG_INVALID', `invalid ingest.sparkplug:\n  ${problems.join('\n  ')}`, { details: { problems } });
  return { kind, fieldOf };
}

/** A metric's value as the field's value, or why it cannot be (a rejection detail). */
export function fieldValue(spec: FieldSpec, field: string, metric: string, value: SparkplugValue): number | string | { readonly invalid: string } {
  if (spec.type === 'enum') {
    if (typeof value === 'string' && spec.values.includes(value)) return value;
    return { invalid: `${field} (metric "${metric}") must be one of ${spec.values.join('|')}, got ${describe(value)}` };
  }
  if (spec.type === 'string') {
    if (typeof value === 'string' && (spec.maxLength === undefined || value.length <= spec.maxLength)) return value;
    return { invalid: `${field} (metric "${metric}") must be a string${spec.maxLength === undefined ? '' : ` of at most ${spec.maxLength} characters`}, got ${describe(value)}` };
  }
  const n = typeof value === 'boolean' ? (value ? 1 : 0) : value;
  if (spec.type === 'bool') {
    if (n === 0 || n === 1) return n;
    return { invalid: `${field} (metric "${metric}") must be a boolean, got ${describe(value)}` };
  }
  if (typeof n !== 'number' || !Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n)) || n < spec.min || n > spec.max) {
    return { invalid: `${field} (metric "${metric}") must be ${spec.type === 'int' ? 'an integer' : 'a number'} in [${spec.min}, ${spec.max}], got ${describe(value)}` };
  }
  return n;
}

function describe(v: SparkplugValue): string {
  const text = typeof v === 'string' ? JSON.stringify(v) : String(v);
  return text.length > 64 ? `${text.slice(0, 64)}...` : text;
}
