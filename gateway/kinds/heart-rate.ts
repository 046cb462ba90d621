import { builtinKind } from './registry.js';

/** Athletes' heart rate: an entry of kinds/builtin.yaml. */
export const heartRateKind = builtinKind('heart-rate');
