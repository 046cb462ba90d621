import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import type { WindowConfig } from '../../../gateway/config/config.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { createWindowEngine, type MeteredWindowEngine, type SlidingWindowSpec } from '../../../gateway/window/window-engine.js';
import { mulberry32 } from '../../helpers/random.js';
import { testKinds } from './window-kit.js';

/**
 * addMany() against add() reading by reading: random publishes (mostly one device each, some
 * mixing devices and kinds, out of order, some late beyond lateness, some far ahead of the
 * clock, repeated readings), with idle ticks and restarts from a snapshot in between, on
 * configurations small enough to evict devices and windows. Both engines must tell the same
 * emissions and late reports in the same order, and end with the same stats and snapshot.
 */

const CLASSES = ['CAR', 'BUS', 'TRUCK'];

interface Publish {
  readonly readings: Reading[];
  /** Clock advance before the publish; followed by tick() when `tick`. */
  readonly advanceMs: number;
  readonly tick: boolean;
  readonly restart: boolean;
  /** receivedAt given apart from the clock (replay), or undefined for the default. */
  readonly receivedAtShift: number | undefined;
}

function generate(seed: number): { config: WindowConfig; sliding: SlidingWindowSpec[]; publishes: Publish[] } {
  const rnd = mulberry32(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const config: WindowConfig = {
    defaultSizesMs: pick([[1_000], [1_000, 5_000], [2_000, 3_000]]),
    sizesMs: { bridge: pick([[2_000], [1_000, 4_000]]) },
    outOfOrdernessMs: pick([0, 0, 300]),
    allowedLatenessMs: pick([0, 500, 3_000]),
    idleTimeoutMs: pick([2_000, 5_000]),
    maxOpenWindowsPerKey: pick([1, 2, 8, 1_000]),
    maxDevices: pick([1, 2, 3, 1_000]),
    maxWatermarkSkewMs: pick([0, 200, 5_000]),
    maxForgottenDevices: pick([0, 2, 1_000]),
  };
  const sliding: SlidingWindowSpec[] = rnd() < 0.6 ? [{ kind: 'heart-rate', sizeMs: 2_500, slideMs: 1_000 }] : [];
  const devices = Array.from({ length: 2 + Math.floor(rnd() * 4) }, (_, i) => ({ kind: pick(['heart-rate', 'bridge', 'probe']), id: `dev-${i}` }));
  let seq = 0;
  let eventTime = 100_000;
  const reading = (d: { kind: string; id: string }): Reading => {
    const r = rnd();
    // mostly near the stream's time, some out of order, some far behind (late), a few far ahead
    const ts = Math.max(0, Math.round(eventTime + (r < 0.7 ? rnd() * 400 - 300 : r < 0.9 ? -rnd() * 8_000 : rnd() * 20_000)));
    const values: Record<string, number | string> =
      d.kind === 'heart-rate'
        ? { bpm: 50 + Math.floor(rnd() * 100) }
        : d.kind === 'bridge'
          ? { vehicleClass: pick(CLASSES), lane: 1 + Math.floor(rnd() * 2), speedKmh: 30 + rnd() * 90, axles: 2 }
          : rnd() < 0.3
            ? {}
            : { zone: pick(['A', 'B']), level: rnd() * 200 - 100 };
    return { kind: d.kind, deviceId: d.id, seq: ++seq, ts, values };
  };
  const publishes: Publish[] = [];
  for (let p = 0; p < 150; p++) {
    const home = pick(devices);
    const n = 1 + Math.floor(rnd() * 12);
    const readings: Reading[] = [];
    for (let k = 0; k < n; k++) {
      eventTime += Math.floor(rnd() * 120);
      const x = rnd();
      // a repeated reading (the engine takes what dedup let through: nothing removes it here)
      if (x < 0.08 && readings.length > 0) readings.push(pick(readings));
      else readings.push(reading(x < 0.2 ? pick(devices) : home));
    }
    publishes.push({
      readings,
      advanceMs: Math.floor(rnd() * 600),
      tick: rnd() < 0.15,
      restart: rnd() < 0.03,
      receivedAtShift: rnd() < 0.2 ? -Math.floor(rnd() * 10_000) : undefined,
    });
  }
  return { config, sliding, publishes };
}

interface Run {
  readonly events: unknown[];
  readonly engine: MeteredWindowEngine;
}

function run(seed: number, batched: boolean): Run {
  const { config, sliding, publishes } = generate(seed);
  const clock = new ManualClock(100_000);
  const events: unknown[] = [];
  const make = (): MeteredWindowEngine => {
    const e = createWindowEngine({ kinds: testKinds, config, clock, sliding });
    e.onEmit((w) => events.push(['emit', w]));
    e.onLate((r, sizeMs, slideMs) => events.push(['late', r.deviceId, r.seq, sizeMs, slideMs]));
    return e;
  };
  let engine = make();
  for (const p of publishes) {
    clock.advance(p.advanceMs);
    if (p.tick) engine.tick();
    const now = clock.now();
    const receivedAt = p.receivedAtShift === undefined ? undefined : now + p.receivedAtShift;
    if (batched) engine.addMany(p.readings, now, receivedAt);
    else for (const r of p.readings) engine.add(r, now, receivedAt);
    if (p.restart) {
      const saved = JSON.stringify(engine.snapshot());
      events.push(['restart', { ...engine.stats }]);
      engine = make();
      engine.restore(JSON.parse(saved));
    }
  }
  engine.flush();
  return { events, engine };
}

describe('window engine addMany', () => {
  it('equals add() reading by reading on mixed publishes (devices, kinds, late, future, repeated readings, evictions)', () => {
    let emissions = 0;
    let lates = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const one = run(seed, false);
      const many = run(seed, true);
      expect(many.events, `seed ${seed}`).toEqual(one.events);
      expect(many.engine.stats, `seed ${seed}`).toEqual(one.engine.stats);
      expect(JSON.stringify(many.engine.snapshot()), `seed ${seed}`).toBe(JSON.stringify(one.engine.snapshot()));
      emissions += one.events.filter((e) => (e as unknown[])[0] === 'emit').length;
      lates += one.events.filter((e) => (e as unknown[])[0] === 'late').length;
    }
    // the streams reach the paths that matter
    expect(emissions).toBeGreaterThan(1_000);
    expect(lates).toBeGreaterThan(100);
  });

  it('takes an empty publish as nothing', () => {
    const clock = new ManualClock(1_000);
    const e = createWindowEngine({ kinds: testKinds, config: generate(1).config, clock });
    e.addMany([]);
    expect(e.stats.devices).toBe(0);
  });
});
