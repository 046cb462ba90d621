import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../../gateway/config/schema.js';
import { ENV_OVERRIDES } from '../../../gateway/config/load-config.js';
import { ERROR_CODES } from '../../../gateway/errors.js';
import { REJECT_REASONS } from '../../../gateway/ingest/reject-reasons.js';
import { CONNECTION_REFUSAL_REASONS } from '../../../gateway/ingest/packet-guard.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

type Node = { type?: string; properties?: Record<string, unknown>; additionalProperties?: unknown; items?: unknown };
const hasKeys = (n: unknown): n is Node & { properties: Record<string, unknown> } => typeof n === 'object' && n !== null && (n as Node).type === 'object' && (n as Node).properties !== undefined;

/**
 * Every key of the schema: nested objects as a.b, entries of a map of objects (kinds.<name>,
 * ...fields.<field>) and of an array of objects (ingest.sources[]) with their own keys too.
 */
function keys(schema: Node, prefix = ''): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(schema.properties ?? {})) {
    const s = v as Node;
    if (hasKeys(s)) out.push(...keys(s, `${prefix}${k}.`));
    else if (s.type === 'object' && hasKeys(s.additionalProperties)) {
      out.push(prefix + k, ...keys(s.additionalProperties, `${prefix}${k}.${k === 'fields' ? '<field>' : '<name>'}.`));
    } else if (s.type === 'array' && hasKeys(s.items)) out.push(prefix + k, ...keys(s.items, `${prefix}${k}[].`));
    else out.push(prefix + k);
  }
  return out;
}

describe('README', () => {
  it('should document every error code', () => {
    for (const code of Object.keys(ERROR_CODES)) expect(readme, code).toContain(`| \`${code}\` |`);
  });

  it('should document every configuration key and environment override', () => {
    for (const key of keys(configSchema)) expect(readme, key).toContain(`| \`${key}\` |`);
    const rule = (configSchema.properties.alerts.properties.rules as { items: { properties: Record<string, unknown> } }).items;
    for (const key of Object.keys(rule.properties)) expect(readme, `alerts.rules[].${key}`).toContain(`\`alerts.rules[].${key}\``);
    for (const name of Object.keys(ENV_OVERRIDES)) expect(readme, name).toContain(`| \`${name}\` |`);
  });

  it('should document every key of a webhook (delivery.webhooks[])', () => {
    const webhook = (configSchema.properties.delivery.properties.webhooks as { items: { properties: Record<string, unknown> } }).items;
    for (const key of keys(webhook as { properties: Record<string, unknown> })) expect(readme, `delivery.webhooks[].${key}`).toContain(`| \`delivery.webhooks[].${key}\` |`);
  });

  it('should document every rejection reason', () => {
    for (const reason of REJECT_REASONS) expect(readme, reason).toContain(`| \`${reason}\` |`);
  });

  it('should document every connection refusal reason', () => {
    for (const reason of CONNECTION_REFUSAL_REASONS) expect(readme, reason).toContain(`| \`${reason}\` |`);
  });
});
