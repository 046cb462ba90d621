/**
 * The built-in kinds: kinds/builtin.yaml at the package root, checked by the config's kind schema
 * (plus the protobuf keys only that file may use) and turned into descriptors by the same code as
 * the config's kinds.<name>. A problem in it is a packaging bug: loading throws, listing them all.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import type { KindDefinition } from '../config/config.js';
import { fieldDefinitionSchema, kindDefinitionSchema } from '../config/schema.js';
import { kindsFromDefinitions } from './kind-definitions.js';
import type { KindDescriptor } from './kind-descriptor.js';

/** kinds/ sits at the package root: two levels up from source, three from dist/. */
export const BUILTIN_KINDS_FILE = [new URL('../../kinds/builtin.yaml', import.meta.url), new URL('../../../kinds/builtin.yaml', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((p) => existsSync(p)) ?? 'kinds/builtin.yaml';

const builtinKindSchema = {
  ...kindDefinitionSchema,
  properties: {
    ...kindDefinitionSchema.properties,
    fields: {
      ...kindDefinitionSchema.properties.fields,
      additionalProperties: { ...fieldDefinitionSchema, properties: { ...fieldDefinitionSchema.properties, protoName: { type: 'string', minLength: 1 } } },
    },
    proto: {
      type: 'object',
      additionalProperties: false,
      required: ['reading', 'batch', 'batchField'],
      properties: { reading: { type: 'string' }, batch: { type: 'string' }, batchField: { type: 'string' } },
    },
  },
};

/** Reads and checks a kinds file of the shipped format (every problem listed in the error). */
export function loadBuiltinKinds(file = BUILTIN_KINDS_FILE): KindDescriptor[] {
  const raw: unknown = parseYaml(readFileSync(file, 'utf8'));
  const validate = new Ajv({ allErrors: true, useDefaults: true, strict: false }).compile({ type: 'object', additionalProperties: builtinKindSchema });
  if (!validate(raw)) {
    throw new Error(`${file}: ${(validate.errors ?? []).map((e) => `${e.instancePath.slice(1).replaceAll('/', '.')}: ${e.message ?? 'invalid'}`).join('; ')}`);
  }
  const problems: string[] = [];
  const kinds = kindsFromDefinitions(raw as Record<string, KindDefinition>, file, problems);
  if (problems.length > 0) throw new Error(`${file}:\n  - ${problems.join('\n  - ')}`);
  return kinds;
}
