/**
 * Window engine throughput: 10k keys (5000 athletes + 500 bridges x 10 class/lane groups), two
 * tumbling sizes (10 s and 60 s), mildly out-of-order event times. Prints readings/s and window
 * updates/s (readings x window sizes) for the add() path only; readings are built outside the
 * timed section.
 *
 *   npx tsx bench/window-bench.ts [--quick]
 */
import { performance } from 'node:perf_hooks';
import type { Clock } from '../gateway/clock.js';
import type { Reading } from '../gateway/kinds/kind-descriptor.js';
import { createKindRegistry } from '../gateway/kinds/registry.js';
import { createWindowEngine } from '../gateway/window/window-engine.js';

const quick = process.argv.includes('--quick');
const TOTAL = quick ? 1_000_000 : 10_000_000;
const CHUNK = 200_000;
const ATHLETES = 5_000;
const BRIDGES = 500;
const CLASSES = ['CAR', 'BUS', 'TRUCK', 'VAN', 'MOTORCYCLE'];
const SIZES = [10_000, 60_000];

let seed = 42;
function rnd(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

let now = 1_700_000_000_000;
const clock: Clock = { now: () => now };
const engine = createWindowEngine({
  kinds: createKindRegistry(),
  config: {
    defaultSizesMs: SIZES,
    sizesMs: {},
    outOfOrdernessMs: 0,
    allowedLatenessMs: 5_000,
    idleTimeoutMs: 60_000,
    maxOpenWindowsPerKey: 64,
    maxDevices: 100_000,
    maxWatermarkSkewMs: 5_000,
    maxForgottenDevices: 500_000,
  },
  clock,
});
let emitted = 0;
let late = 0;
engine.onEmit(() => emitted++);
engine.onLate(() => late++);

// Every device sends in turn; the stream's event time advances 1 ms per 20 readings, so each
// athlete reads at ~4 Hz of event time, bridge readings spread over 10 groups.
const devices = ATHLETES + BRIDGES;
let seq = 0;
let eventTime = now;
function chunk(n: number): Reading[] {
  const out: Reading[] = new Array<Reading>(n);
  for (let i = 0; i < n; i++) {
    const d = seq % devices;
    seq++;
    if (seq % 20 === 0) eventTime++;
    const ts = eventTime - (rnd() < 0.05 ? Math.floor(rnd() * 3_000) : 0);
    out[i] =
      d < ATHLETES
        ? { kind: 'heart-rate', deviceId: `athlete-${d}`, seq, ts, values: { bpm: 60 + Math.floor(rnd() * 120) } }
        : {
            kind: 'bridge',
            deviceId: `bridge-${d - ATHLETES}`,
            seq,
            ts,
            values: {
              vehicleClass: CLASSES[Math.floor(rnd() * CLASSES.length)]!,
              lane: 1 + Math.floor(rnd() * 2),
              speedKmh: 40 + rnd() * 80,
              axles: 2,
            },
          };
  }
  return out;
}

// warm-up (JIT), not measured
for (const r of chunk(CHUNK)) engine.add(r);

let added = 0;
let elapsed = 0;
while (added < TOTAL) {
  const batch = chunk(Math.min(CHUNK, TOTAL - added));
  now += 1_000;
  const t0 = performance.now();
  for (let i = 0; i < batch.length; i++) engine.add(batch[i]!);
  elapsed += performance.now() - t0;
  added += batch.length;
}
const t0 = performance.now();
engine.tick();
const tickMs = performance.now() - t0;

const perSec = (n: number) => Math.round((n / elapsed) * 1000).toLocaleString('en-US');
const s = engine.stats;
console.log(`window-bench${quick ? ' (quick)' : ''}: ${added.toLocaleString('en-US')} readings, ${ATHLETES + BRIDGES * 10} keys, sizes ${SIZES.join('/')} ms`);
console.log(`  readings/s        ${perSec(added)}`);
console.log(`  window updates/s  ${perSec(added * SIZES.length)}`);
console.log(`  windows emitted   ${emitted.toLocaleString('en-US')} (corrections ${s.windowsCorrected}, late ${late})`);
console.log(`  open windows      ${s.openWindows.toLocaleString('en-US')} over ${s.devices} devices`);
console.log(`  tick() over all   ${tickMs.toFixed(1)} ms`);
console.log(`  heap used         ${(process.memoryUsage().heapUsed / 1048576).toFixed(0)} MiB`);
