/**
 * Heap cost of forgotten devices' window horizons (window.maxForgottenDevices): forgets N
 * devices through the "emit-lru" policy (maxDevices 1) and prints the heap growth per horizon
 * and the checkpoint bytes per horizon. Device ids are 14 characters ("device-0000001").
 *
 *   node --expose-gc --import tsx bench/horizon-heap.ts [N]
 */
import type { Clock } from '../gateway/clock.js';
import type { Reading } from '../gateway/kinds/kind-descriptor.js';
import { BUILTIN_KINDS, createKindRegistry } from '../gateway/kinds/registry.js';
import { createWindowEngine } from '../gateway/window/window-engine.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');
const n = Number(process.argv[2] ?? 500_000);
const t0 = 1_700_000_040_000;
const clock: Clock = { now: () => t0 };
const engine = createWindowEngine({
  kinds: createKindRegistry(BUILTIN_KINDS),
  clock,
  config: {
    defaultSizesMs: [10_000, 60_000],
    sizesMs: {},
    outOfOrdernessMs: 0,
    allowedLatenessMs: 30_000,
    idleTimeoutMs: 60_000,
    maxOpenWindowsPerKey: 64,
    maxDevices: 1,
    maxWatermarkSkewMs: 5_000,
    maxForgottenDevices: n,
  },
});
gc();
const before = process.memoryUsage().heapUsed;
for (let i = 0; i <= n; i++) {
  const r: Reading = { kind: 'heart-rate', deviceId: `device-${String(i).padStart(7, '0')}`, seq: 1, ts: t0 + (i % 60) * 1_000, values: { bpm: 70 } };
  engine.add(r, t0, t0);
}
gc();
const after = process.memoryUsage().heapUsed;
const bytes = JSON.stringify(engine.snapshot()).length;
console.log(
  JSON.stringify({
    horizons: engine.stats.horizons,
    heapBytesPerHorizon: Math.round((after - before) / engine.stats.horizons),
    heapMB: Math.round((after - before) / 1048576),
    checkpointBytesPerHorizon: Math.round(bytes / engine.stats.horizons),
  }),
);
