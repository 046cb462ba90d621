import { describe, expect, it } from 'vitest';
import { resolveOptions, type SimulatorOptions } from '../../../simulators/options.js';
import { PublishPlanner, type PublishItem } from '../../../simulators/plan.js';
import type { VehicleDetection } from '../../../simulators/readings.js';
import { SummaryBuilder, type Summary, type WindowCounts } from '../../../simulators/summary.js';

const START = Date.UTC(2025, 10, 22, 7, 59, 30);
const sum = (c: WindowCounts): number => Object.values(c).reduce((a, b) => a + b, 0);

function plan(o: Partial<SimulatorOptions> & Pick<SimulatorOptions, 'kind'>): PublishItem[] {
  return new PublishPlanner(resolveOptions({ seed: 1, startTs: START, ...o })).all();
}

function summarize(kind: 'heart-rate' | 'bridge', items: readonly PublishItem[]): Summary {
  const b = new SummaryBuilder({ kind, qos: 1, format: 'protobuf', batch: 1, seed: 1, startTs: START, realtime: false });
  for (const item of items) {
    b.noteSent(item.readings.length);
    b.recordAcked(item.device.id, item.readings);
  }
  return b.build('completed');
}

describe('summary', () => {
  it('summary should count injected duplicates once', () => {
    const b = new SummaryBuilder({ kind: 'heart-rate', qos: 1, format: 'json', batch: 1, seed: 1, startTs: START, realtime: false });
    const r = (seq: number) => ({ seq, ts: START + seq * 200, bpm: 60 + seq });
    expect(b.recordAcked('a1', [r(1), r(2)])).toBe(2);
    expect(b.recordAcked('a1', [r(2)])).toBe(0);
    expect(b.recordAcked('a2', [r(2)])).toBe(1);
    expect(b.recordAcked('a1', [r(4), r(1)])).toBe(1);
    const s = b.build('completed');
    expect(s.totals.readings).toBe(4);
    expect(s.totals.publishes).toBe(4);
    expect(s.byDevice['a1']).toMatchObject({ readings: 3, minSeq: 1, maxSeq: 4, missingSeqs: 1 });
    expect(s.byDevice['a2']).toMatchObject({ readings: 1, minSeq: 2, maxSeq: 2, missingSeqs: 1 });
    // bpm stats count each reading once too.
    const w = Math.floor((START + 200) / 60_000) * 60_000;
    expect(s.windows['1m'].bpmByDevice?.['a1']?.[String(w)]).toEqual({ min: 61, max: 64, sum: 61 + 62 + 64 });
  });

  it('summary should make per-minute and per-10-second windows aligned to UTC that sum to the totals', () => {
    const items = plan({ kind: 'bridge', devices: 4, durationS: 600, rate: 2, duplicates: 0.05, outOfOrder: 0.05, batch: 3 });
    const s = summarize('bridge', items);
    expect(s.totals.readings).toBeGreaterThan(1000);
    for (const name of ['1m', '10s'] as const) {
      const w = s.windows[name];
      expect(sum(w.total)).toBe(s.totals.readings);
      for (const k of Object.keys(w.total)) expect(Number(k) % w.sizeMs).toBe(0);
      for (const [device, counts] of Object.entries(w.byDevice)) {
        expect(sum(counts)).toBe(s.byDevice[device]!.readings);
        const byClass = w.byDeviceClass![device]!;
        expect(Object.values(byClass).reduce((a, c) => a + sum(c), 0)).toBe(s.byDevice[device]!.readings);
        expect(Object.values(w.byDeviceClassLane![device]!).reduce((a, c) => a + sum(c), 0)).toBe(s.byDevice[device]!.readings);
      }
      expect(Object.values(w.byClass!).reduce((a, c) => a + sum(c), 0)).toBe(s.totals.readings);
    }
    expect(Object.keys(s.windows['1m'].total)).toHaveLength(11); // 07:59:30 + 600 s spans 11 minutes
    expect(Object.values(s.byClass!).reduce((a, b) => a + b, 0)).toBe(s.totals.readings);
    // Unique readings = what the models generated, duplicates or not.
    const unique = new Set(items.flatMap((i) => i.readings.map((r) => `${i.device.id}/${r.seq}`)));
    expect(s.totals.readings).toBe(unique.size);
    expect(s.totals.readingsSent).toBeGreaterThan(unique.size);
    for (const d of Object.values(s.byDevice)) expect(d.missingSeqs).toBe(0);
  });

  it('summary should count bridge detections per class consistently with the readings', () => {
    const items = plan({ kind: 'bridge', devices: 2, count: 500 });
    const s = summarize('bridge', items);
    const expected: Record<string, number> = {};
    for (const r of items.flatMap((i) => i.readings) as VehicleDetection[]) expected[r.vehicleClass] = (expected[r.vehicleClass] ?? 0) + 1;
    expect(s.byClass).toEqual(expected);
    expect(s.byDevice['bridge-1']!.readings).toBe(500);
  });
});

describe('publish planner', () => {
  it('publish planner should give identical publishes for the same seed and different ones for another', () => {
    const o = { kind: 'heart-rate' as const, devices: 3, count: 400, batch: 4, duplicates: 0.1, outOfOrder: 0.1 };
    const a = plan(o);
    const b = plan(o);
    expect(b.map((i) => i.payload)).toEqual(a.map((i) => i.payload));
    expect(b.map((i) => [i.device.id, i.dueTs])).toEqual(a.map((i) => [i.device.id, i.dueTs]));
    expect(plan({ ...o, seed: 2 }).map((i) => i.payload)).not.toEqual(a.map((i) => i.payload));
    // A device's readings do not depend on the number of devices.
    const alone = plan({ ...o, devices: 1 }).map((i) => i.payload);
    expect(a.filter((i) => i.device.id === 'athlete-1').map((i) => i.payload)).toEqual(alone);
  });

  it('publish planner should honour count, duration, batch size and event-time order', () => {
    const byCount = plan({ kind: 'heart-rate', devices: 2, count: 10, batch: 3 });
    expect(byCount.map((i) => i.readings.length)).toEqual([3, 3, 3, 3, 3, 3, 1, 1]);
    expect(byCount.every((i) => i.payload[0] === 0x0a)).toBe(true);
    const byDuration = plan({ kind: 'heart-rate', devices: 1, durationS: 60 });
    expect(byDuration).toHaveLength(300);
    expect(byDuration.at(-1)!.readings[0]!.ts).toBe(START + 59_800);
    const dues = plan({ kind: 'bridge', devices: 5, durationS: 300 }).map((i) => i.dueTs);
    expect(dues).toEqual([...dues].sort((x, y) => x - y));
  });

  it('publish planner should inject out-of-order readings and duplicates at about the configured rates', () => {
    const items = plan({ kind: 'heart-rate', devices: 1, count: 20_000, outOfOrder: 0.05, duplicates: 0.03 });
    const seqs = items.map((i) => i.readings[0]!.seq);
    const dups = seqs.length - new Set(seqs).size;
    expect(dups / 20_000).toBeGreaterThan(0.025);
    expect(dups / 20_000).toBeLessThan(0.035);
    let inversions = 0;
    let max = 0;
    for (const s of seqs) {
      if (s < max) inversions++;
      max = Math.max(max, s);
    }
    expect(inversions / 20_000).toBeGreaterThan(0.04);
    expect(new Set(seqs).size).toBe(20_000);
  });
});
