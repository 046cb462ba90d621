import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import type { WindowConfig } from '../../../gateway/config/config.js';
import { createEventBus } from '../../../gateway/events.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { ReadingPipeline } from '../../../gateway/pipeline/reading-pipeline.js';
import { SequenceTracker } from '../../../gateway/pipeline/sequence-tracker.js';
import { createWindowEngine } from '../../../gateway/window/window-engine.js';
import { mulberry32 } from '../../helpers/random.js';

/**
 * The pipeline windows a publish in one call after dedup. Against a reference that windows
 * reading by reading whatever a plain (device, seq) set lets through, in arrival order: the
 * same windows and late reports, with the offsets of the records that caused them, and the
 * same duplicate count. Publishes mix repeated readings, late and out-of-order event times and
 * a few devices.
 */
const kinds = createKindRegistry();
const config: WindowConfig = {
  defaultSizesMs: [1_000, 5_000],
  sizesMs: {},
  outOfOrdernessMs: 0,
  allowedLatenessMs: 500,
  idleTimeoutMs: 60_000,
  maxOpenWindowsPerKey: 4,
  maxDevices: 3,
  maxWatermarkSkewMs: 1_000,
  maxForgottenDevices: 100,
};

describe('reading pipeline, a publish windowed at once', () => {
  it('should give the windows, late reports and duplicates of windowing each accepted reading in turn', () => {
    const rnd = mulberry32(11);
    const publishes: Reading[][] = [];
    const nextSeq = [1, 1, 1, 1, 1];
    let ts = 1_700_000_000_000;
    for (let p = 0; p < 400; p++) {
      const d = Math.floor(rnd() * 5);
      const rs: Reading[] = [];
      for (let k = 1 + Math.floor(rnd() * 10); k > 0; k--) {
        ts += Math.floor(rnd() * 80);
        const x = rnd();
        // a repeat of a recent seq of the device, or the next one
        const seq = x < 0.2 && nextSeq[d]! > 3 ? nextSeq[d]! - 1 - Math.floor(rnd() * 3) : nextSeq[d]!++;
        const t = x > 0.9 ? ts - Math.floor(rnd() * 4_000) : ts + Math.floor(rnd() * 200) - 100;
        rs.push({ kind: 'heart-rate', deviceId: `hr-${d}`, seq, ts: t, values: { bpm: 40 + Math.floor(rnd() * 150) } });
      }
      publishes.push(rs);
    }

    const clock = new ManualClock(ts);
    const registry = new Registry();
    const events = createEventBus();
    const got: unknown[] = [];
    events.on('window.emitted', (e) => got.push(['window', e.offset, e.window]));
    events.on('reading.late', (e) => got.push(['late', e.offset, e.reading.deviceId, e.reading.seq, e.sizeMs]));
    let duplicates = 0;
    const pipeline = new ReadingPipeline({
      kinds,
      tracker: new SequenceTracker(256, 100),
      windows: createWindowEngine({ kinds, config, clock }),
      events,
      metrics: { duplicate: (n) => void (duplicates += n) },
      registry,
      clock,
    });

    const reference = createWindowEngine({ kinds, config, clock });
    const want: unknown[] = [];
    let offset = 0;
    reference.onEmit((w) => want.push(['window', offset, w]));
    reference.onLate((r, sizeMs) => want.push(['late', offset, r.deviceId, r.seq, sizeMs]));
    const seen = new Set<string>();
    let refDuplicates = 0;

    publishes.forEach((rs, i) => {
      clock.advance(50);
      const receivedAt = clock.now() - (i % 7 === 0 ? 300 : 0);
      pipeline.process(rs, i, receivedAt);
      offset = i;
      for (const r of rs) {
        const key = `${r.deviceId}#${r.seq}`;
        if (seen.has(key)) {
          refDuplicates++;
          continue;
        }
        seen.add(key);
        reference.add(r, clock.now(), receivedAt);
      }
    });
    expect(refDuplicates).toBeGreaterThan(50);
    expect(want.filter((e) => (e as unknown[])[0] === 'late').length).toBeGreaterThan(20);
    expect(want.filter((e) => (e as unknown[])[0] === 'window').length).toBeGreaterThan(200);
    expect(duplicates).toBe(refDuplicates);
    expect(got).toEqual(want);
  });
});
