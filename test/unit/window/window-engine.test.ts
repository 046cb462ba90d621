import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import { isGatewayError } from '../../../gateway/errors.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { createWindowEngine } from '../../../gateway/window/window-engine.js';
import { mulberry32 } from '../../helpers/random.js';
import { harness, hr, identity, testKinds, vehicle, windowConfig } from './window-kit.js';

describe('window engine', () => {
  it('should align tumbling windows to the epoch and compute every heart-rate aggregate', () => {
    const { engine, emitted } = harness({ defaultSizesMs: [10_000], allowedLatenessMs: 0 });
    engine.add(hr('a', 20_001, 70));
    engine.add(hr('a', 25_000, 61));
    engine.add(hr('a', 29_999, 90));
    engine.add(hr('a', 22_000, 80)); // out of order: not "last"
    expect(emitted).toEqual([]);
    engine.add(hr('a', 30_000, 100));
    expect(emitted).toEqual([
      {
        kind: 'heart-rate',
        deviceId: 'a',
        sizeMs: 10_000,
        slideMs: 10_000,
        start: 20_000,
        end: 30_000,
        group: {},
        values: { bpm_count: 4, bpm_min: 61, bpm_max: 90, bpm_sum: 301, bpm_mean: 75.25, bpm_last: 90 },
        revision: 0,
      },
    ]);
  });

  it('should take "last" from the later arrival when two readings share the greatest event time', () => {
    const { engine, emitted } = harness({ allowedLatenessMs: 0 });
    engine.add(hr('a', 5_000, 60));
    engine.add(hr('a', 5_000, 65));
    engine.add(hr('a', 4_000, 99));
    engine.flush();
    expect(emitted[0]?.values['bpm_last']).toBe(65);
  });

  it('should key bridge windows by device, vehicle class and lane, as strings', () => {
    const { engine, emitted } = harness({ sizesMs: { bridge: [60_000] } });
    engine.add(vehicle('b1', 1_000, 'CAR', 1, 80));
    engine.add(vehicle('b1', 2_000, 'CAR', 1, 100));
    engine.add(vehicle('b1', 3_000, 'TRUCK', 1, 70));
    engine.add(vehicle('b1', 4_000, 'CAR', 2, 90));
    engine.add(vehicle('b2', 4_000, 'CAR', 1, 50));
    engine.flush();
    expect(emitted.map((w) => [w.deviceId, w.group, w.values])).toEqual([
      ['b1', { vehicleClass: 'CAR', lane: '1' }, { count: 2, speedKmh_mean: 90, speedKmh_max: 100 }],
      ['b1', { vehicleClass: 'CAR', lane: '2' }, { count: 1, speedKmh_mean: 90, speedKmh_max: 90 }],
      ['b1', { vehicleClass: 'TRUCK', lane: '1' }, { count: 1, speedKmh_mean: 70, speedKmh_max: 70 }],
      ['b2', { vehicleClass: 'CAR', lane: '1' }, { count: 1, speedKmh_mean: 50, speedKmh_max: 50 }],
    ]);
  });

  it('should aggregate an optional field of a kind that is only data, leaving out what has no value', () => {
    const { engine, emitted } = harness();
    const probe = (ts: number, values: Reading['values']): Reading => ({ kind: 'probe', deviceId: 'p', seq: ts, ts, values });
    engine.add(probe(1_000, { zone: 'A', level: -2 }));
    engine.add(probe(2_000, { zone: 'A' }));
    engine.add(probe(3_000, { level: 4 }));
    engine.add(probe(3_500, {}));
    engine.flush();
    expect(emitted.map((w) => [w.group, w.values])).toEqual([
      [{ zone: '' }, { count: 2, level_count: 1, level_min: 4, level_max: 4, level_sum: 4, level_mean: 4, level_last: 4 }],
      [{ zone: 'A' }, { count: 2, level_count: 1, level_min: -2, level_max: -2, level_sum: -2, level_mean: -2, level_last: -2 }],
    ]);
    const { engine: e2, emitted: out2 } = harness();
    e2.add(probe(1_000, { zone: 'B' }));
    e2.flush();
    expect(out2[0]?.values).toEqual({ count: 1, level_count: 0, level_sum: 0 });
  });

  it('should fire a window when the watermark reaches its end, not one millisecond before', () => {
    const { engine, emitted } = harness({ defaultSizesMs: [10_000] });
    engine.add(hr('a', 1_000, 60));
    engine.add(hr('a', 9_999, 60));
    expect(emitted).toHaveLength(0);
    engine.add(hr('a', 10_000, 60));
    expect(emitted.map((w) => [w.start, w.revision])).toEqual([[0, 0]]);
  });

  it('should hold firing back by outOfOrdernessMs', () => {
    const { engine, emitted } = harness({ defaultSizesMs: [10_000] }, { outOfOrdernessMs: 2_000 });
    engine.add(hr('a', 1_000, 60));
    engine.add(hr('a', 11_999, 60));
    engine.add(hr('a', 5_000, 70)); // not a correction: the window has not fired yet
    expect(emitted).toHaveLength(0);
    engine.add(hr('a', 12_000, 60));
    expect(emitted.map((w) => [w.start, w.revision, w.values['bpm_count']])).toEqual([[0, 0, 2]]);
  });

  describe('lateness', () => {
    // size 10 s, allowed lateness 5 s: window [0, 10000) is correctable while maxTs - 5000 < 10000.
    function firedWindow() {
      const h = harness({ defaultSizesMs: [10_000], allowedLatenessMs: 5_000 });
      h.engine.add(hr('a', 9_000, 60));
      h.engine.add(hr('a', 10_000, 60)); // fires [0, 10000) as revision 0
      expect(h.emitted.map((w) => [w.start, w.revision])).toEqual([[0, 0]]);
      return h;
    }

    it('should accept a reading exactly allowedLatenessMs behind and emit the window again with revision 1', () => {
      const { engine, emitted, late } = firedWindow();
      engine.add(hr('a', 14_999, 60)); // maxTs - (end - 1) = 5000: exactly at the limit
      engine.add(hr('a', 9_999, 120));
      expect(late).toEqual([]);
      expect(emitted).toHaveLength(2);
      expect(identity(emitted[1]!)).toBe(identity(emitted[0]!));
      expect(emitted[1]).toMatchObject({ start: 0, end: 10_000, revision: 1, values: { bpm_count: 2, bpm_max: 120, bpm_last: 120 } });
      engine.add(hr('a', 0, 30)); // the window's first millisecond, same window: also accepted
      expect(emitted.at(-1)).toMatchObject({ start: 0, revision: 2, values: { bpm_count: 3, bpm_min: 30 } });
    });

    it('should report a reading one millisecond past the limit to onLate and not apply it', () => {
      const { engine, emitted, late } = firedWindow();
      engine.add(hr('a', 15_000, 60)); // maxTs - (end - 1) = 5001: window closed
      const r = hr('a', 9_999, 120);
      engine.add(r);
      expect(late).toEqual([{ reading: r, sizeMs: 10_000, slideMs: 10_000 }]);
      expect(engine.stats.lateDropped).toBe(1);
      expect(emitted).toHaveLength(1);
      engine.flush();
      expect(emitted.map((w) => [w.start, w.revision, w.values['bpm_count']])).toEqual([
        [0, 0, 1],
        [10_000, 0, 2],
      ]);
    });

    it('should close a window at its end with zero allowed lateness', () => {
      const { engine, emitted, late } = harness({ defaultSizesMs: [10_000], allowedLatenessMs: 0 });
      engine.add(hr('a', 9_000, 60));
      engine.add(hr('a', 9_999, 61));
      engine.add(hr('a', 10_000, 62));
      engine.add(hr('a', 9_999, 63));
      expect(late.map((l) => l.reading.values['bpm'])).toEqual([63]);
      expect(emitted.map((w) => [w.start, w.revision, w.values['bpm_count']])).toEqual([[0, 0, 2]]);
    });

    it('should judge lateness per window size: late for the short window, a correction for the long one', () => {
      const { engine, emitted, late } = harness({ defaultSizesMs: [10_000, 60_000], allowedLatenessMs: 5_000 });
      engine.add(hr('a', 9_000, 60));
      engine.add(hr('a', 60_000, 60)); // fires both [0, 10000) and [0, 60000)
      engine.add(hr('a', 9_500, 99));
      expect(late.map((l) => l.sizeMs)).toEqual([10_000]);
      expect(emitted.at(-1)).toMatchObject({ sizeMs: 60_000, start: 0, revision: 1, values: { bpm_count: 2, bpm_max: 99 } });
    });
  });

  describe('idle', () => {
    it('should emit the open windows of a device silent for idleTimeoutMs, and not a millisecond earlier', () => {
      const clock = new ManualClock(0);
      const { engine, emitted } = harness({ defaultSizesMs: [10_000, 60_000], idleTimeoutMs: 30_000 }, {}, clock);
      engine.add(hr('quiet', 12_000, 60));
      clock.set(5_000);
      engine.add(hr('busy', 1_000, 70));
      clock.set(29_999);
      engine.tick();
      expect(emitted).toEqual([]);
      clock.set(30_000);
      engine.tick();
      expect(emitted.map((w) => [w.deviceId, w.sizeMs, w.start, w.revision])).toEqual([
        ['quiet', 10_000, 10_000, 0],
        ['quiet', 60_000, 0, 0],
      ]);
      expect(engine.stats.idleEmissions).toBe(2);
      engine.tick();
      expect(emitted).toHaveLength(2);
      clock.set(35_000);
      engine.tick();
      expect(emitted.map((w) => w.deviceId)).toEqual(['quiet', 'quiet', 'busy', 'busy']);
    });

    it('should let a backlog after an idle emission correct the window once the watermark passes it', () => {
      const clock = new ManualClock(0);
      const { engine, emitted } = harness({ defaultSizesMs: [10_000], idleTimeoutMs: 30_000 }, {}, clock);
      engine.add(hr('a', 1_000, 60));
      clock.set(30_000);
      engine.tick();
      expect(emitted.map((w) => [w.start, w.revision, w.values['bpm_count']])).toEqual([[0, 0, 1]]);
      engine.add(hr('a', 2_000, 61));
      engine.add(hr('a', 3_000, 62));
      expect(emitted).toHaveLength(1); // not one correction per reading
      engine.add(hr('a', 10_000, 63));
      expect(emitted.map((w) => [w.start, w.revision, w.values['bpm_count']])).toEqual([
        [0, 0, 1],
        [0, 1, 3],
      ]);
    });

    it('should forget a device silent for idleTimeoutMs + allowedLatenessMs, keeping only its horizon', () => {
      const clock = new ManualClock(0);
      const { engine, emitted, late } = harness({ defaultSizesMs: [10_000], idleTimeoutMs: 30_000, allowedLatenessMs: 5_000 }, {}, clock);
      engine.add(hr('a', 1_000, 60));
      clock.set(34_999);
      engine.tick();
      expect(engine.stats).toMatchObject({ openWindows: 1, devices: 1 });
      clock.set(35_000);
      engine.tick();
      expect(engine.stats).toMatchObject({ openWindows: 0, devicesExpired: 1, devices: 0, horizons: 1 });
      expect((engine.snapshot() as { devices: unknown[] }).devices).toEqual([]);
      engine.add(hr('a', 12_000, 61)); // a window "a" never had: taken, revision 0
      expect(late).toEqual([]);
      engine.flush();
      expect(emitted.map((w) => [w.start, w.revision, w.values['bpm_count']])).toEqual([
        [0, 0, 1],
        [10_000, 0, 1],
      ]);
      expect(engine.stats).toMatchObject({ devices: 1, horizons: 0 }); // the device carries its horizon again
    });
  });

  describe('forgotten devices keep their horizon', () => {
    // The schema's defaults: 10 s and 1 min windows, 30 s allowed lateness, 60 s idle timeout.
    const defaults = { defaultSizesMs: [10_000, 60_000], allowedLatenessMs: 30_000, idleTimeoutMs: 60_000 };
    const t0 = 1_700_000_040_000; // a minute boundary

    /** The last emission per identity: what the store holds (same identity = overwrite). */
    function stored(emitted: readonly ReturnType<typeof harness>['emitted'][number][]): Map<string, { revision: number; count: number | undefined }> {
      const m = new Map<string, { revision: number; count: number | undefined }>();
      for (const w of emitted) m.set(identity(w), { revision: w.revision, count: w.values['bpm_count'] });
      return m;
    }

    it('a device forgotten after idling should not overwrite its emitted window with partial data when a late reading arrives', () => {
      const clock = new ManualClock(t0);
      const { engine, emitted, late } = harness(defaults, {}, clock);
      // A full minute at 1 Hz: [t0, t0 + 60 s) holds 60 readings, each 10 s window 10.
      for (let i = 0; i < 60; i++) {
        clock.set(t0 + i * 1_000);
        engine.add(hr('runner', t0 + i * 1_000, 100 + (i % 20)));
      }
      clock.set(t0 + 59_000 + 60_000);
      engine.tick(); // idle: every window emitted
      const full = stored(emitted);
      expect(full.get(`heart-rate|runner|60000/60000|${t0}|`)).toEqual({ revision: 0, count: 60 });
      clock.set(t0 + 59_000 + 60_000 + 30_000);
      engine.tick(); // silent for idleTimeoutMs + allowedLatenessMs: forgotten
      expect(engine.stats).toMatchObject({ devices: 0, devicesExpired: 1, horizons: 1 });
      const before = emitted.length;

      // A reconnect backlog overlapping what was emitted, then new readings.
      const backlog = hr('runner', t0 + 30_500, 150);
      engine.add(backlog);
      expect(late.map((l) => [l.reading, l.sizeMs])).toEqual([
        [backlog, 10_000],
        [backlog, 60_000],
      ]);
      expect(engine.stats.lateDropped).toBe(2);
      const fresh = hr('runner', t0 + 150_000, 90);
      engine.add(fresh);
      engine.flush();
      const after = emitted.slice(before);
      // No emission for an identity the store already holds: nothing overwrote the complete windows.
      expect(after.filter((w) => full.has(identity(w)))).toEqual([]);
      expect(after.map((w) => [w.sizeMs, w.start, w.revision, w.values['bpm_count']])).toEqual([
        [10_000, t0 + 150_000, 0, 1],
        [60_000, t0 + 120_000, 0, 1],
      ]);
      expect(late.length).toBe(2);
    });

    it('a device evicted by maxDevices should not overwrite its emitted window with partial data when a late reading arrives', () => {
      const clock = new ManualClock(t0);
      const { engine, emitted, late } = harness({ ...defaults, maxDevices: 1 }, {}, clock);
      const at = (ts: number): number => {
        clock.set(ts);
        return ts;
      };
      for (let i = 0; i < 60; i++) engine.add(hr('a', at(t0 + i * 1_000), 100));
      engine.add(hr('a', at(t0 + 61_000), 101)); // fires every window of the first minute
      const minute = `heart-rate|a|60000/60000|${t0}|`;
      expect(stored(emitted).get(minute)).toEqual({ revision: 0, count: 60 });
      engine.add(hr('b', t0 + 61_000, 70)); // evicts "a": [t0 + 60 s, ...) windows emitted early
      expect(engine.stats).toMatchObject({ devicesEvicted: 1, horizons: 1 });
      const full = stored(emitted);
      const before = emitted.length;
      // "a" again: a reading 40 s behind (past allowed lateness of the minute window) and one for
      // a window still correctable when it was evicted: both late, neither reopens its window.
      const pastLateness = hr('a', t0 + 21_000, 150);
      const inEvictedWindow = hr('a', t0 + 61_500, 150);
      engine.add(pastLateness); // evicts "b"
      engine.add(inEvictedWindow);
      expect(late.map((l) => [l.reading.ts, l.sizeMs])).toEqual([
        [t0 + 21_000, 10_000],
        [t0 + 21_000, 60_000],
        [t0 + 61_500, 10_000],
        [t0 + 61_500, 60_000],
      ]);
      engine.add(hr('a', t0 + 70_000, 90)); // a new 10 s window: taken
      engine.flush();
      const after = emitted.slice(before).filter((w) => w.deviceId === 'a');
      expect(after.filter((w) => full.has(identity(w)))).toEqual([]);
      expect(after.map((w) => [w.sizeMs, w.start, w.revision, w.values['bpm_count']])).toEqual([[10_000, t0 + 70_000, 0, 1]]);
      expect(stored(emitted).get(minute)).toEqual({ revision: 0, count: 60 });
    });

    it('horizons should be bounded by maxForgottenDevices (oldest dropped, counted) and expire after maxPastAgeMs', () => {
      const clock = new ManualClock(t0);
      const maxPastAgeMs = 3_600_000;
      const { engine, late } = harness({ ...defaults, maxDevices: 1, maxForgottenDevices: 3 }, { maxPastAgeMs }, clock);
      for (const id of ['d0', 'd1', 'd2', 'd3', 'd4']) engine.add(hr(id, t0 + 1_000, 60)); // d0..d3 evicted in turn
      // horizons of d0..d3 for 3 places: d0's, the oldest, dropped
      expect(engine.stats).toMatchObject({ devicesEvicted: 4, horizons: 3, horizonsDropped: 1 });
      engine.add(hr('d0', t0 + 2_000, 61)); // its horizon was dropped: the counted hazard, taken (evicts d4: d1's dropped)
      expect(late).toEqual([]);
      expect(engine.stats).toMatchObject({ horizons: 3, horizonsDropped: 2 });
      engine.add(hr('d3', t0 + 2_000, 61)); // kept (evicts d0: d2's dropped): late
      expect(late.map((l) => l.reading.deviceId)).toEqual(['d3', 'd3']);
      expect(engine.stats).toMatchObject({ horizons: 2, horizonsDropped: 3 }); // d4, d0; d3 carries its own
      // Every horizon is t0 + 1 (windows starting at t0 were emitted). It is kept while ingest
      // still accepts a reading that falls in a window starting before it: ts >= now - maxPastAgeMs,
      // in a window up to the largest size (60 s) long.
      const lastNeeded = t0 + maxPastAgeMs + 60_000;
      clock.set(lastNeeded);
      engine.tick(); // d3 idle: forgotten, its horizon back in the memory
      expect(engine.stats).toMatchObject({ devices: 0, horizons: 3, horizonsExpired: 0 });
      clock.set(lastNeeded + 1);
      engine.tick();
      expect(engine.stats).toMatchObject({ horizons: 0, horizonsExpired: 3 });
    });

    it('a restart should keep forgotten devices\' horizons: snapshot, JSON, restore, and the late reading is still late', () => {
      const clock = new ManualClock(t0);
      const n = 1_000;
      const config = { ...defaults, maxDevices: 2, maxForgottenDevices: n - 2 };
      const { engine } = harness(config, {}, clock);
      for (let i = 0; i < n; i++) engine.add(hr(`dev-${i}`, t0 + 1_000, 60)); // n - 2 evicted, each with a horizon
      expect(engine.stats.horizons).toBe(n - 2);
      const saved = JSON.stringify(engine.snapshot());
      const restarted = harness(config, {}, new ManualClock(t0 + 5_000));
      restarted.engine.restore(JSON.parse(saved));
      expect(restarted.engine.stats.horizons).toBe(n - 2);
      // Proportional: a few bytes per forgotten device (index, id, delta), not a device record.
      const live = JSON.stringify({ ...(JSON.parse(saved) as object), forgotten: undefined }).length;
      expect((saved.length - live) / (n - 2)).toBeLessThan(20);
      restarted.engine.add(hr('dev-7', t0 + 2_000, 61));
      expect(restarted.late.map((l) => l.reading.deviceId)).toEqual(['dev-7', 'dev-7']);
      restarted.engine.add(hr('dev-7', t0 + 10_000, 62)); // its next 10 s window: taken
      restarted.engine.flush();
      expect(restarted.emitted.map((w) => [w.deviceId, w.sizeMs, w.start, w.revision])).toContainEqual(['dev-7', 10_000, t0 + 10_000, 0]);
      // Same drops after the restart as without it: the horizons keep their order (dev-0 goes first).
      const again = harness(config, {}, new ManualClock(t0 + 5_000));
      again.engine.restore(JSON.parse(saved));
      for (const e of [engine, again.engine]) e.add(hr('late-comer', t0 + 1_000, 60));
      const horizonsOf = (e: typeof engine) => JSON.stringify((e.snapshot() as { forgotten: unknown }).forgotten);
      expect(horizonsOf(again.engine)).toBe(horizonsOf(engine));
      expect(again.engine.stats.horizonsDropped).toBe(1);
      again.engine.add(hr('dev-0', t0 + 2_000, 61)); // its horizon was the one dropped
      expect(again.late).toEqual([]);
    });
  });

  describe('bounded devices (emit-lru)', () => {
    it('50k distinct devices (anonymous mode) should hold at most window.maxDevices in memory and in the snapshot, emit every evicted window, and keep only a horizon of forgotten ones', () => {
      const clock = new ManualClock(1_700_000_000_000);
      const maxDevices = 5_000;
      const { engine, emitted } = harness(
        { defaultSizesMs: [10_000, 60_000], allowedLatenessMs: 30_000, idleTimeoutMs: 60_000, maxDevices },
        {},
        clock,
      );
      const n = 50_000;
      let peak = 0;
      for (let i = 0; i < n; i++) {
        if (i % 100 === 0) clock.advance(50);
        engine.add(hr(`anon-${i}`, clock.now(), 60 + (i % 50)));
        peak = Math.max(peak, engine.stats.devices);
        if (i % 5_000 === 4_999) engine.tick();
      }
      expect(peak).toBe(maxDevices);
      expect(engine.stats.devicesEvicted).toBe(n - maxDevices);
      const snapshotBytes = JSON.stringify(engine.snapshot()).length;
      // One device with two one-reading windows is ~300 bytes of JSON, a forgotten device's horizon
      // ~20 (kind index, id, delta): the windows are bounded by maxDevices, not n.
      expect(engine.stats.horizons).toBe(n - maxDevices);
      expect(snapshotBytes).toBeLessThan(maxDevices * 400 + (n - maxDevices) * 20);
      // Nothing lost: every evicted device's windows were emitted (both sizes), the rest on flush.
      const byDevice = new Set(emitted.map((w) => `${w.deviceId}/${w.sizeMs}`));
      expect(byDevice.size).toBe(2 * (n - maxDevices));
      clock.advance(60_000 + 30_000);
      engine.tick(); // every device idle past idleTimeoutMs + allowedLatenessMs: emitted and forgotten
      expect(engine.stats).toMatchObject({ devices: 0, openWindows: 0, devicesExpired: maxDevices });
      expect(new Set(emitted.map((w) => `${w.deviceId}/${w.sizeMs}`)).size).toBe(2 * n);
      expect(emitted.reduce((sum, w) => sum + (w.values['bpm_count'] ?? 0), 0)).toBe(2 * n);
      expect(engine.stats.horizons).toBe(n);
      expect(JSON.stringify(engine.snapshot()).length).toBeLessThan(200 + n * 20);
    });

    it('should evict the least recently active device, not the oldest created, and emit its windows first', () => {
      const clock = new ManualClock(0);
      const { engine, emitted } = harness({ defaultSizesMs: [10_000], maxDevices: 2 }, {}, clock);
      engine.add(hr('a', 1_000, 60));
      engine.add(hr('b', 1_000, 61));
      engine.add(hr('a', 2_000, 62)); // "a" is now the most recently active
      engine.add(hr('c', 3_000, 63)); // evicts "b"
      expect(emitted.map((w) => [w.deviceId, w.revision, w.values['bpm_count']])).toEqual([['b', 0, 1]]);
      expect(engine.stats).toMatchObject({ devices: 2, devicesEvicted: 1 });
      const saved = JSON.parse(JSON.stringify(engine.snapshot())) as { devices: { deviceId: string }[] };
      expect(saved.devices.map((d) => d.deviceId)).toEqual(['a', 'c']); // activity order survives a restart
      engine.add(hr('a', 4_000, 64));
      engine.add(hr('d', 4_000, 65)); // evicts "c"
      expect(emitted.map((w) => w.deviceId)).toEqual(['b', 'c']);
    });
  });

  describe('watermark bounded by the gateway clock', () => {
    it('one reading 290 s in the future (inside the 5 min ingest skew) should not make the next 30 on-time readings late', () => {
      // The defaults of the schema: 10 s and 1 min windows, 30 s allowed lateness, 5 s watermark skew.
      const start = 1_700_000_040_000; // a minute boundary
      const clock = new ManualClock(start);
      const { engine, emitted, late } = harness(
        { defaultSizesMs: [10_000, 60_000], allowedLatenessMs: 30_000, idleTimeoutMs: 60_000, maxWatermarkSkewMs: 5_000 },
        {},
        clock,
      );
      const onTime: Reading[] = [];
      const tick5Hz = (): void => {
        clock.advance(200);
        const r = hr('runner', clock.now(), 120);
        onTime.push(r);
        engine.add(r);
      };
      for (let i = 0; i < 5; i++) tick5Hz();
      const outlier = hr('runner', clock.now() + 290_000, 200);
      engine.add(outlier);
      for (let i = 0; i < 30; i++) tick5Hz();
      expect(late).toEqual([]);
      expect(engine.stats.futureReadings).toBe(1);
      engine.flush();
      // Every reading is in the last revision of its windows: 35 on time, the outlier in its own.
      const last = new Map<string, (typeof emitted)[number]>();
      for (const w of emitted) last.set(identity(w), w);
      for (const size of [10_000, 60_000]) {
        const counted = [...last.values()].filter((w) => w.sizeMs === size).reduce((n, w) => n + (w.values['bpm_count'] ?? 0), 0);
        expect(counted, `size ${size}`).toBe(onTime.length + 1);
        const outlierWindow = [...last.values()].find((w) => w.sizeMs === size && w.start <= outlier.ts && outlier.ts < w.end);
        expect(outlierWindow?.values['bpm_max']).toBe(200);
      }
    });

    it('should move the watermark to receivedAt + maxWatermarkSkewMs at most, and no further', () => {
      const { engine, emitted, late } = harness({ defaultSizesMs: [10_000], allowedLatenessMs: 0, maxWatermarkSkewMs: 2_000 });
      engine.add(hr('a', 1_000, 60), 7_999, 7_999);
      engine.add(hr('a', 60_000, 61), 8_000, 7_999); // bound 9999: [0, 10000) does not fire yet
      expect(emitted).toEqual([]);
      engine.add(hr('a', 9_000, 62), 8_000, 7_999); // still open: taken
      expect(late).toEqual([]);
      engine.add(hr('a', 60_000, 63), 8_000, 8_000); // bound 10000: fires
      expect(emitted.map((w) => [w.start, w.values['bpm_count']])).toEqual([[0, 2]]);
      expect(engine.stats.futureReadings).toBe(2);
    });

    it('a checkpoint from before the bound should restore, its far-future watermark capped at takenAt + maxWatermarkSkewMs and its expired-device horizons kept as horizons', () => {
      const takenAt = 1_700_000_000_000;
      // format pulsegate-window/1 without maxWatermarkSkewMs: "w" had one reading 290 s ahead,
      // "gone" had expired and was kept as a bare horizon.
      const before = harness({ defaultSizesMs: [10_000], allowedLatenessMs: 5_000 }, {}, new ManualClock(takenAt - 1_000));
      before.engine.add(hr('w', takenAt - 1_000, 60));
      before.clock.set(takenAt);
      const old = before.engine.snapshot() as { takenAt: number; maxWatermarkSkewMs?: number; devices: { maxTs: number }[] };
      expect(old.takenAt).toBe(takenAt);
      delete old.maxWatermarkSkewMs;
      old.devices[0]!.maxTs = takenAt + 290_000;
      old.devices.unshift({ kind: 'heart-rate', deviceId: 'gone', maxTs: takenAt - 500_000, lastArrival: takenAt - 400_000, lateBefore: takenAt - 500_000, groups: [] } as never);
      const h = harness({ defaultSizesMs: [10_000], allowedLatenessMs: 5_000, maxWatermarkSkewMs: 5_000 }, {}, new ManualClock(takenAt + 1_000));
      h.engine.restore(JSON.parse(JSON.stringify(old)));
      expect(h.engine.stats).toMatchObject({ devices: 1, horizons: 1 });
      h.engine.add(hr('w', takenAt + 500, 70)); // on time: with the old watermark it was late
      expect(h.late).toEqual([]);
      h.engine.add(hr('gone', takenAt - 500_001, 1)); // in a window ending at its old horizon: still late
      expect(h.late.map((l) => l.reading.deviceId)).toEqual(['gone']);
      h.engine.flush();
      expect(h.emitted.filter((w) => w.deviceId === 'w').map((w) => [w.start, w.values['bpm_count']])).toEqual([
        [takenAt - 10_000, 1],
        [takenAt, 1],
      ]);
    });
  });

  describe('bounded open windows', () => {
    it('should emit the oldest window early under "emit-oldest" and treat it as final', () => {
      const { engine, emitted, late } = harness(
        { defaultSizesMs: [1_000], maxOpenWindowsPerKey: 2, allowedLatenessMs: 0 },
        { outOfOrdernessMs: 100_000 }, // nothing fires by watermark here
      );
      engine.add(hr('a', 500, 60));
      engine.add(hr('a', 1_500, 61));
      expect(emitted).toEqual([]);
      engine.add(hr('a', 2_500, 62));
      expect(emitted.map((w) => [w.start, w.revision])).toEqual([[0, 0]]);
      expect(engine.stats).toMatchObject({ evictions: 1, openWindows: 2 });
      const r = hr('a', 700, 63);
      engine.add(r);
      expect(late).toEqual([{ reading: r, sizeMs: 1_000, slideMs: 1_000 }]);
      // other keys are unaffected by this key's bound
      engine.add(hr('b', 700, 64));
      expect(late).toHaveLength(1);
      engine.flush();
      expect(emitted.map((w) => [w.deviceId, w.start, w.revision])).toEqual([
        ['a', 0, 0],
        ['b', 0, 0],
        ['a', 1_000, 0],
        ['a', 2_000, 0],
      ]);
    });

    it('should keep a key at maxOpenWindowsPerKey windows however far it runs ahead', () => {
      const { engine } = harness({ defaultSizesMs: [1_000], maxOpenWindowsPerKey: 3 }, { outOfOrdernessMs: 1e9 });
      for (let t = 0; t < 100_000; t += 700) engine.add(hr('a', t, 60));
      expect(engine.stats.openWindows).toBe(3);
    });
  });

  describe('sliding windows', () => {
    it('should put a reading in size/slide windows, each [s, s + size) with s a multiple of slide', () => {
      const { engine, emitted } = harness(
        { defaultSizesMs: [10_000] },
        { sliding: [{ kind: 'heart-rate', sizeMs: 3_000, slideMs: 1_000 }] },
      );
      engine.add(hr('a', 5_500, 70));
      engine.flush();
      expect(emitted.filter((w) => w.slideMs === 1_000).map((w) => [w.start, w.end, w.values['bpm_count']])).toEqual([
        [3_000, 6_000, 1],
        [4_000, 7_000, 1],
        [5_000, 8_000, 1],
      ]);
    });

    it('should handle a size that is not a multiple of the slide', () => {
      const { engine, emitted } = harness({}, { sliding: [{ kind: 'heart-rate', sizeMs: 2_500, slideMs: 1_000 }] });
      engine.add(hr('a', 5_500, 70));
      engine.add(hr('a', 4_000, 71));
      engine.flush();
      expect(emitted.filter((w) => w.slideMs === 1_000).map((w) => [w.start, w.values['bpm_count']])).toEqual([
        [2_000, 1],
        [3_000, 1],
        [4_000, 2],
        [5_000, 1],
      ]);
    });

    it('should fire sliding windows in end order and report a reading late only when all its windows closed', () => {
      const { engine, emitted, late } = harness(
        { defaultSizesMs: [60_000], allowedLatenessMs: 0 },
        { sliding: [{ kind: 'heart-rate', sizeMs: 30_000, slideMs: 5_000 }] },
      );
      for (let t = 0; t <= 40_000; t += 1_000) engine.add(hr('a', t, 60 + (t % 7)));
      const sliding = emitted.filter((w) => w.slideMs === 5_000);
      expect(sliding.map((w) => w.end)).toEqual([5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 35_000, 40_000]);
      expect(sliding.find((w) => w.start === 5_000)?.values['bpm_count']).toBe(30);
      engine.add(hr('a', 12_000, 200)); // its windows start -15000..10000 and end by 40000: all closed
      expect(late.map((l) => [l.sizeMs, l.slideMs])).toEqual([[30_000, 5_000]]);
      engine.add(hr('a', 14_000, 201)); // same windows: late
      engine.add(hr('a', 15_000, 202)); // [15000, 45000) is open: applied there, so not reported
      expect(late).toHaveLength(2);
    });

    it('should reject a sliding spec with a slide larger than its size or an unknown kind', () => {
      const make = (sliding: { kind: string; sizeMs: number; slideMs: number }[]) => () =>
        createWindowEngine({ kinds: testKinds, config: windowConfig(), clock: new ManualClock(), sliding });
      expect(make([{ kind: 'heart-rate', sizeMs: 1_000, slideMs: 2_000 }])).toThrow(/slide/);
      expect(make([{ kind: 'nope', sizeMs: 1_000, slideMs: 1_000 }])).toThrow(/unknown kind/);
    });
  });

  it('should emit in a deterministic order: by end, then kind, device, group and size', () => {
    const { engine, emitted } = harness({ defaultSizesMs: [10_000, 20_000], sizesMs: { bridge: [10_000] } });
    engine.add(vehicle('b', 1_000, 'TRUCK', 1, 80));
    engine.add(hr('z', 1_000, 60));
    engine.add(hr('a', 14_000, 60));
    engine.add(vehicle('b', 1_000, 'CAR', 2, 80));
    engine.add(hr('a', 1_000, 60)); // a's watermark is past 10000: fires at once
    engine.flush();
    expect(emitted.map((w) => `${w.end} ${w.kind} ${w.deviceId} ${Object.values(w.group).join('/')} ${w.sizeMs}`)).toEqual([
      '10000 heart-rate a  10000',
      '10000 bridge b CAR/2 10000',
      '10000 bridge b TRUCK/1 10000',
      '10000 heart-rate z  10000',
      '20000 heart-rate a  10000',
      '20000 heart-rate a  20000',
      '20000 heart-rate z  20000',
    ]);
  });

  it('should refuse a reading of an unknown kind and a snapshot that is not one', () => {
    const { engine } = harness();
    expect(() => engine.add({ kind: 'nope', deviceId: 'a', seq: 1, ts: 1, values: {} })).toThrow(
      expect.objectContaining({ code: 'GW_ERR_UNKNOWN_KIND' }),
    );
    let err: unknown;
    try {
      engine.restore({ format: 'something else' });
    } catch (e) {
      err = e;
    }
    expect(isGatewayError(err, 'GW_ERR_CHECKPOINT')).toBe(true);
  });

  describe('snapshot', () => {
    it('should produce byte-identical output after restore(snapshot()) mid-stream', () => {
      let evicted = 0;
      let future = 0;
      for (let seed = 1; seed <= 40; seed++) {
        const rnd = mulberry32(seed);
        const config = {
          defaultSizesMs: [1_000, 5_000],
          sizesMs: { bridge: [2_000] },
          allowedLatenessMs: 1_500,
          idleTimeoutMs: 3_000,
          maxOpenWindowsPerKey: 4,
          // 6 devices (3 ids x 2 kinds) for 4 places: "emit-lru" evictions on both sides of the cut;
          // event time runs ahead of the clock, so the watermark bound is hit too.
          maxDevices: 4,
          maxWatermarkSkewMs: 1_000,
          maxForgottenDevices: 500_000,
        };
        const extra = { sliding: [{ kind: 'heart-rate', sizeMs: 3_000, slideMs: 1_000 }] };
        const inputs: (Reading | number)[] = [];
        let t = 0;
        for (let i = 0; i < 400; i++) {
          if (rnd() < 0.05) {
            inputs.push(Math.floor(rnd() * 8_000)); // clock advance + tick
            continue;
          }
          t += Math.floor(rnd() * 200);
          const ts = Math.max(0, t - (rnd() < 0.2 ? Math.floor(rnd() * 4_000) : 0));
          const dev = `d${Math.floor(rnd() * 3)}`;
          inputs.push(
            rnd() < 0.5
              ? hr(dev, ts, Math.floor(rnd() * 200))
              : vehicle(dev, ts, rnd() < 0.5 ? 'CAR' : 'BUS', 1 + Math.floor(rnd() * 2), Math.round(rnd() * 1000) / 10),
          );
        }
        const run = (h: ReturnType<typeof harness>, from: number, to: number) => {
          for (let i = from; i < to; i++) {
            const x = inputs[i]!;
            if (typeof x === 'number') {
              h.clock.advance(x);
              h.engine.tick();
            } else {
              h.clock.advance(10);
              h.engine.add(x);
            }
          }
        };
        const whole = harness(config, extra, new ManualClock(0));
        run(whole, 0, inputs.length);
        whole.engine.flush();

        const cut = 1 + Math.floor(rnd() * (inputs.length - 2));
        const first = harness(config, extra, new ManualClock(0));
        run(first, 0, cut);
        const saved = JSON.stringify(first.engine.snapshot());
        const second = harness(config, extra, new ManualClock(first.clock.now()));
        second.engine.restore(JSON.parse(saved));
        run(second, cut, inputs.length);
        second.engine.flush();

        expect(JSON.stringify([...first.emitted, ...second.emitted]), `seed ${seed} cut ${cut}`).toBe(JSON.stringify(whole.emitted));
        expect(JSON.stringify([...first.late, ...second.late])).toBe(JSON.stringify(whole.late));
        expect(second.engine.stats.openWindows).toBe(whole.engine.stats.openWindows);
        evicted += whole.engine.stats.devicesEvicted;
        future += whole.engine.stats.futureReadings;
      }
      expect(evicted).toBeGreaterThan(40);
      expect(future).toBeGreaterThan(40);
    });

    it('should not count the time between snapshot and restore (gateway downtime) as device silence', () => {
      const config = { defaultSizesMs: [60_000], allowedLatenessMs: 5_000, idleTimeoutMs: 500 };
      const before = harness(config, {}, new ManualClock(1_000_000));
      before.engine.add(hr('d', 1_000, 70));
      const saved = JSON.stringify(before.engine.snapshot());
      const after = harness(config, {}, new ManualClock(1_000_000 + 120_000)); // down for two minutes
      after.engine.restore(JSON.parse(saved));
      after.engine.tick();
      after.engine.add(hr('d', 2_000, 80));
      after.engine.flush();
      expect(after.late).toEqual([]);
      expect(after.emitted.at(-1)?.values['bpm_count']).toBe(2);
    });

    it('should survive a JSON round trip of a fresh engine and of one with data', () => {
      const { engine } = harness();
      expect(JSON.parse(JSON.stringify(engine.snapshot()))).toEqual(engine.snapshot());
      engine.add(hr('a', 1_000, 60));
      const s = JSON.parse(JSON.stringify(engine.snapshot()));
      const other = harness();
      other.engine.restore(s);
      expect(other.engine.snapshot()).toEqual(s);
    });
  });
});
