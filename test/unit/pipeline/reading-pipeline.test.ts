import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import { createEventBus } from '../../../gateway/events.js';
import { SequenceTracker } from '../../../gateway/pipeline/sequence-tracker.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createIngestMetrics } from '../../../gateway/ingest/ingest-metrics.js';
import { ReadingPipeline } from '../../../gateway/pipeline/reading-pipeline.js';
import type { WindowConfig } from '../../../gateway/config/config.js';
import type { WindowResult } from '../../../gateway/window/types.js';
import { createWindowEngine, type MeteredWindowEngine } from '../../../gateway/window/window-engine.js';

/**
 * The real pipeline (sequence tracker, window engine, event bus) on an injected clock: what a
 * gateway runs on every durable ingest record, live and in replay.
 */
const kinds = createKindRegistry();

const windowConfig: WindowConfig = {
  defaultSizesMs: [10_000, 60_000],
  sizesMs: {},
  outOfOrdernessMs: 0,
  allowedLatenessMs: 30_000,
  idleTimeoutMs: 60_000,
  maxOpenWindowsPerKey: 64,
  maxDevices: 5_000,
  maxWatermarkSkewMs: 5_000,
  maxForgottenDevices: 500_000,
};

interface Rig {
  readonly pipeline: ReadingPipeline;
  readonly tracker: SequenceTracker;
  readonly windows: MeteredWindowEngine;
  readonly emitted: WindowResult[];
  readonly late: Reading[];
}

function rig(clock: ManualClock, maxDevices = 5_000): Rig {
  const registry = new Registry();
  const tracker = new SequenceTracker(256, maxDevices);
  const windows = createWindowEngine({ kinds, config: { ...windowConfig, maxDevices }, clock });
  const emitted: WindowResult[] = [];
  const late: Reading[] = [];
  const events = createEventBus();
  events.on('window.emitted', (e) => emitted.push(e.window));
  events.on('reading.late', (e) => late.push(e.reading));
  const pipeline = new ReadingPipeline({
    kinds,
    tracker,
    windows,
    events,
    metrics: createIngestMetrics(registry, [...kinds.keys()]),
    registry,
    clock,
  });
  return { pipeline, tracker, windows, emitted, late };
}

function hr(deviceId: string, seq: number, ts: number, bpm: number): Reading {
  return { kind: 'heart-rate', deviceId, seq, ts, values: { bpm } };
}

describe('reading pipeline', () => {
  it('50k anonymous device ids through the pipeline should keep dedup and window state at their maxDevices, and the checkpoint with them', () => {
    const clock = new ManualClock(1_700_000_000_000);
    const maxDevices = 5_000;
    const { pipeline, tracker, windows, emitted } = rig(clock, maxDevices);
    const n = 50_000;
    let offset = 0;
    let peakTracker = 0;
    let peakWindows = 0;
    for (let i = 0; i < n; i++) {
      if (i % 100 === 0) clock.advance(50);
      // each id publishes twice (the second a QoS 1 resend: a duplicate)
      const r = hr(`anon-${i}`, 1, clock.now(), 70);
      pipeline.process([r], offset++, clock.now());
      pipeline.process([r], offset++, clock.now());
      peakTracker = Math.max(peakTracker, tracker.size);
      peakWindows = Math.max(peakWindows, windows.stats.devices);
      if (i % 5_000 === 4_999) windows.tick();
    }
    expect(peakTracker).toBe(maxDevices);
    expect(peakWindows).toBe(maxDevices);
    expect(tracker.stats.evictions).toBe(n - maxDevices);
    const bytes = JSON.stringify(pipeline.checkpoint().data).length;
    // ~300 bytes of windows and ~80 of dedup state per live device, ~20 per forgotten device's
    // window horizon: the windows and dedup state are bounded by maxDevices, not n.
    expect(bytes).toBeLessThan(maxDevices * 500 + (n - maxDevices) * 20);
    // Nothing lost: every id's windows were emitted (evicted ones at once), each counting its reading once.
    clock.advance(windowConfig.idleTimeoutMs + windowConfig.allowedLatenessMs);
    windows.tick();
    expect(windows.stats.devices).toBe(0);
    expect(emitted.length).toBe(2 * n);
    expect(emitted.every((w) => w.values['bpm_count'] === 1)).toBe(true);
    const after = pipeline.checkpoint().data.stages as { windows: { devices: unknown[] } };
    expect(after.windows.devices).toEqual([]);
  });

  it('replay with a later clock should bound the watermark by each record receivedAt, as the live path did: same windows, none late', () => {
    // Live: a device at 5 Hz sends one reading 290 s ahead, then goes on. Replay of the same
    // records an hour later must not let the outlier (now in the past by the replay's clock)
    // move the watermark, or the on-time readings after it would be late only in replay.
    const t0 = 1_700_000_040_000;
    const publishes: { readings: Reading[]; receivedAt: number }[] = [];
    let seq = 0;
    for (let i = 0; i < 40; i++) {
      const receivedAt = t0 + i * 200;
      const ts = i === 5 ? receivedAt + 290_000 : receivedAt;
      publishes.push({ readings: [hr('runner', ++seq, ts, 100 + i)], receivedAt });
    }
    const run = (clockAt: (receivedAt: number) => number): Rig => {
      const clock = new ManualClock(t0);
      const r = rig(clock);
      publishes.forEach((p, offset) => {
        clock.set(clockAt(p.receivedAt));
        r.pipeline.process(p.readings, offset, p.receivedAt);
      });
      r.windows.flush();
      return r;
    };
    const live = run((receivedAt) => receivedAt + 3); // processed a few ms after receipt (fsync)
    const replay = run((receivedAt) => receivedAt + 3_600_000);
    expect(live.late).toEqual([]);
    expect(replay.late).toEqual([]);
    expect(JSON.stringify(replay.emitted)).toBe(JSON.stringify(live.emitted));
    expect(replay.windows.stats.futureReadings).toBe(1);
  });
});
