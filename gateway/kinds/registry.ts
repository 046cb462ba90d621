import type { KindDefinition } from '../config/config.js';
import { GatewayError } from '../errors.js';
import { loadBuiltinKinds } from './builtin.js';
import { kindsFromDefinitions } from './kind-definitions.js';
import type { KindDescriptor } from './kind-descriptor.js';

/** The kinds shipped with the gateway (kinds/builtin.yaml): heart-rate, bridge. */
export const BUILTIN_KINDS: readonly KindDescriptor[] = loadBuiltinKinds();

export type KindRegistry = ReadonlyMap<string, KindDescriptor>;

/** Every kind the gateway knows, by name (= topic segment); config-defined kinds follow the built-in ones. */
export function createKindRegistry(kinds: readonly KindDescriptor[] = BUILTIN_KINDS): KindRegistry {
  return new Map(kinds.map((k) => [k.name, k]));
}

export function builtinKind(name: string): KindDescriptor {
  const kind = BUILTIN_KINDS.find((k) => k.name === name);
  if (kind === undefined) throw new Error(`no built-in kind "${name}"`);
  return kind;
}

/** The built-in kinds and then those of the config's kinds.<name> (checked by loadConfig already). */
export function createConfiguredKindRegistry(defs: Readonly<Record<string, KindDefinition>>): KindRegistry {
  const problems: string[] = [];
  const taken = { names: new Set(BUILTIN_KINDS.map((k) => k.name)), measurements: new Set(BUILTIN_KINDS.flatMap((k) => [k.measurement, `${k.measurement}_window`])) };
  const configured = kindsFromDefinitions(defs, 'kinds', problems, taken);
  if (problems.length > 0) throw new GatewayError('GW_ERR_CONFIG_INVALID', `invalid kinds:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  return createKindRegistry([...BUILTIN_KINDS, ...configured]);
}
