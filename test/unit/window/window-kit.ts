import { ManualClock } from '../../../gateway/clock.js';
import type { WindowConfig } from '../../../gateway/config/config.js';
import type { KindDescriptor, Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { BUILTIN_KINDS, createKindRegistry } from '../../../gateway/kinds/registry.js';
import type { WindowResult } from '../../../gateway/window/types.js';
import {
  createWindowEngine,
  type MeteredWindowEngine,
  type WindowEngineOptions,
} from '../../../gateway/window/window-engine.js';

/** A kind that exercises what the built-in ones do not: an optional field and an optional group-by. */
export const probeKind: KindDescriptor = {
  name: 'probe',
  proto: { reading: 'test.Probe', batch: 'test.ProbeBatch', batchField: 'probes' },
  measurement: 'probe',
  fields: {
    zone: { type: 'enum', values: ['A', 'B'], required: false },
    level: { type: 'float', min: -100, max: 100, required: false },
  },
  tags: ['zone'],
  window: {
    groupBy: ['zone'],
    aggregates: [{ ops: ['count'] }, { field: 'level', ops: ['count', 'min', 'max', 'sum', 'mean', 'last'] }],
  },
};

export const testKinds = createKindRegistry([...BUILTIN_KINDS, probeKind]);

export function windowConfig(overrides: Partial<WindowConfig> = {}): WindowConfig {
  return {
    defaultSizesMs: [10_000],
    sizesMs: {},
    outOfOrdernessMs: 0,
    allowedLatenessMs: 5_000,
    idleTimeoutMs: 60_000,
    maxOpenWindowsPerKey: 64,
    maxDevices: 100_000,
    maxWatermarkSkewMs: 5_000,
    maxForgottenDevices: 500_000,
    ...overrides,
  };
}

export interface Harness {
  readonly engine: MeteredWindowEngine;
  readonly clock: ManualClock;
  readonly emitted: WindowResult[];
  readonly late: { reading: Reading; sizeMs: number; slideMs: number }[];
}

export function harness(
  config: Partial<WindowConfig> = {},
  extra: Partial<Omit<WindowEngineOptions, 'config' | 'clock'>> = {},
  clock = new ManualClock(1_000_000),
): Harness {
  const engine = createWindowEngine({ kinds: testKinds, config: windowConfig(config), clock, ...extra });
  const emitted: WindowResult[] = [];
  const late: Harness['late'] = [];
  engine.onEmit((w) => emitted.push(w));
  engine.onLate((reading, sizeMs, slideMs) => late.push({ reading, sizeMs, slideMs }));
  return { engine, clock, emitted, late };
}

let seq = 0;
export function hr(deviceId: string, ts: number, bpm: number): Reading {
  return { kind: 'heart-rate', deviceId, seq: ++seq, ts, values: { bpm } };
}

export function vehicle(deviceId: string, ts: number, vehicleClass: string, lane: number, speedKmh: number): Reading {
  return { kind: 'bridge', deviceId, seq: ++seq, ts, values: { vehicleClass, lane, speedKmh, axles: 2 } };
}


export function identity(w: WindowResult): string {
  const group = Object.keys(w.group)
    .sort()
    .map((k) => `${k}=${w.group[k]}`)
    .join(',');
  return `${w.kind}|${w.deviceId}|${w.sizeMs}/${w.slideMs}|${w.start}|${group}`;
}
