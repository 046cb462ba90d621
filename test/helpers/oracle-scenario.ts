import { expect } from 'vitest';
import type { Sink } from '../../gateway/sinks/types.js';
import { runSimulator, type Summary } from '../../simulators/index.js';
import { bridgeWindowMismatches, firstLines, heartRateWindowMismatches, mergeSummaries, readingMismatches, runProblems, storedReadings, storedWindows } from './oracle.js';

/**
 * The fleet of the oracle tests: seeded heart-rate and bridge runs in protobuf batches, JSON
 * arrays and single JSON readings, QoS 1, with out-of-order and duplicate injection, not paced by
 * the wall clock (as fast as the acknowledgements come back).
 *
 * Event time: the runs start well in the past (the gateway rejects ts more than 5 min ahead of or
 * 7 days behind its clock) and span 5 minutes. The start is aligned to a minute, so the window
 * boundaries fall on the same readings in every run: with the seeds fixed, the readings and
 * their per-device order are identical every time. Bridges run at a constant rate (no rush-hour
 * profile), so the run does not depend on the time of day either.
 */
export interface Fleet {
  readonly heartRate: Summary[];
  readonly bridge: Summary[];
}

export const FLEET_SPAN_S = 300;

/** The default start of a fleet run: a minute boundary, twelve minutes ago. */
export function fleetStartTs(now = Date.now()): number {
  return Math.floor((now - 12 * 60_000) / 60_000) * 60_000;
}

export async function runFleet(mqttPort: number, startTs = fleetStartTs(), spanS = FLEET_SPAN_S): Promise<Fleet> {
  const common = {
    url: `mqtt://127.0.0.1:${mqttPort}`,
    qos: 1 as const,
    realtime: false,
    startTs,
    durationS: spanS,
    outOfOrder: 0.03,
    duplicates: 0.02,
  };
  // Disjoint device prefixes: each run owns its devices, so the summaries can be merged per kind.
  const [hrProto, hrJson, brProto, brJson] = await Promise.all([
    runSimulator({ ...common, kind: 'heart-rate', devices: 5, prefix: 'hr-pb-', format: 'protobuf', batch: 5, seed: 11 }),
    runSimulator({ ...common, kind: 'heart-rate', devices: 2, prefix: 'hr-json-', format: 'json', batch: 4, seed: 12 }),
    runSimulator({ ...common, kind: 'bridge', devices: 3, prefix: 'br-pb-', format: 'protobuf', batch: 20, rate: 4, rushHour: false, seed: 13 }),
    runSimulator({ ...common, kind: 'bridge', devices: 2, prefix: 'br-json-', format: 'json', batch: 1, rate: 2, rushHour: false, seed: 14 }),
  ]);
  return { heartRate: [hrProto, hrJson], bridge: [brProto, brJson] };
}

/** Problems of the runs themselves (something not acknowledged, faults not injected). */
export function fleetProblems(fleet: Fleet): string[] {
  const all = [...fleet.heartRate, ...fleet.bridge];
  const problems = all.flatMap(runProblems);
  for (const s of all) {
    if (s.totals.duplicatesInjected === 0) problems.push(`${s.kind} ${s.format}: no duplicate injected`);
    if (s.totals.outOfOrderInjected === 0) problems.push(`${s.kind} ${s.format}: nothing sent out of order`);
  }
  return problems;
}

export interface StoreComparison {
  readonly heartRateWindows: string[];
  readonly bridgeWindows: string[];
  readonly heartRateReadings: string[];
  readonly bridgeReadings: string[];
  /** Per bridge run: stored readings per vehicle class vs the summary's byClass. */
  readonly bridgeClasses: string[];
  readonly stats: { readings: number; windows: number; corrected: number };
}

/** Reads the fleet's devices back through the sink contract and compares with the summaries. */
export async function compareStore(sink: Sink, fleet: Fleet): Promise<StoreComparison> {
  const hrDevices = fleet.heartRate.flatMap((s) => Object.keys(s.byDevice));
  const brDevices = fleet.bridge.flatMap((s) => Object.keys(s.byDevice));
  const hrWindows = await storedWindows(sink, 'heart-rate', hrDevices);
  const brWindows = await storedWindows(sink, 'bridge', brDevices);
  const hrReadings = await storedReadings(sink, 'heart-rate', hrDevices);
  const brReadings = await storedReadings(sink, 'bridge', brDevices);

  const bridgeClasses: string[] = [];
  for (const s of fleet.bridge) {
    const perClass = new Map<string, number>();
    for (const r of brReadings) {
      if (s.byDevice[r.deviceId] === undefined) continue;
      const cls = String(r.values['vehicleClass']);
      perClass.set(cls, (perClass.get(cls) ?? 0) + 1);
    }
    const want = s.byClass ?? {};
    for (const cls of new Set([...perClass.keys(), ...Object.keys(want)])) {
      const got = perClass.get(cls) ?? 0;
      const expected = (want as Record<string, number>)[cls] ?? 0;
      if (got !== expected) bridgeClasses.push(`${s.format} run, class ${cls}: ${got} readings stored, summary ${expected}`);
    }
  }
  const windows = [...hrWindows, ...brWindows];
  return {
    heartRateWindows: heartRateWindowMismatches(fleet.heartRate, hrWindows),
    bridgeWindows: bridgeWindowMismatches(fleet.bridge, brWindows),
    heartRateReadings: readingMismatches(fleet.heartRate, hrReadings),
    bridgeReadings: readingMismatches(fleet.bridge, brReadings),
    bridgeClasses,
    stats: { readings: hrReadings.length + brReadings.length, windows: windows.length, corrected: windows.filter((w) => w.revision > 0).length },
  };
}

/** Two consecutive runs of the same fleet as one oracle. */
export function mergeFleets(a: Fleet, b: Fleet): Fleet {
  return {
    heartRate: a.heartRate.map((s, i) => mergeSummaries(s, b.heartRate[i]!)),
    bridge: a.bridge.map((s, i) => mergeSummaries(s, b.bridge[i]!)),
  };
}

export function fleetReadings(fleet: Fleet): number {
  return [...fleet.heartRate, ...fleet.bridge].reduce((n, s) => n + s.totals.readings, 0);
}

/** Asserts that the store holds exactly the fleet's acknowledged readings and their windows. */
export async function expectStoreEqualsFleet(sink: Sink, fleet: Fleet): Promise<StoreComparison> {
  const result = await compareStore(sink, fleet);
  expect(firstLines(result.heartRateWindows), 'heart-rate windows').toBe('');
  expect(firstLines(result.bridgeWindows), 'bridge windows').toBe('');
  expect(firstLines(result.heartRateReadings), 'heart-rate readings').toBe('');
  expect(firstLines(result.bridgeReadings), 'bridge readings').toBe('');
  expect(result.bridgeClasses, 'bridge readings per class').toEqual([]);
  expect(result.stats.readings).toBe(fleetReadings(fleet));
  return result;
}
