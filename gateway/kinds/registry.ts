import { bridgeKind } from './bridge.js';
import { heartRateKind } from './heart-rate.js';
import type { KindDescriptor } from './kind-descriptor.js';

/** Every kind the gateway knows, by name (= topic segment). */
export const BUILTIN_KINDS: readonly KindDescriptor[] = [heartRateKind, bridgeKind];

export type KindRegistry = ReadonlyMap<string, KindDescriptor>;

export function createKindRegistry(kinds: readonly KindDescriptor[] = BUILTIN_KINDS): KindRegistry {
  return new Map(kinds.map((k) => [k.name, k]));
}
