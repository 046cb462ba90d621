import { describe, expect, it } from 'vitest';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { mulberry32 } from '../../helpers/random.js';
import { engineWithLog } from './alert-engine-helpers.js';

/**
 * The engine keeps its (rule, key) entries and its devices' last arrivals in least recently used
 * order: the checkpoint lists them in that order, and room is made (alerts.maxKeys) by forgetting
 * the oldest. A restored engine goes on in the checkpoint's order.
 */
const SILENT = { id: 'quiet', kind: 'silence', severity: 'warning', devices: '*', after: '30s' } as const;
// minReadings out of reach: buckets are counted, never judged, so every entry stays in state ok.
const LOSS = { id: 'lossy', kind: 'loss', severity: 'warning', devices: '*', window: '1m', above: 0.05, clear: 0.02, minReadings: 1_000_000 } as const;
const reading = (deviceId: string, ts: number, kind = 'heart-rate'): Reading => ({ kind, deviceId, seq: 1, ts, values: { bpm: 80 } }) as Reading;

interface Snap {
  entries: { r: string; k: string; d: string }[];
  seen: [string, string, number, number][];
}
const orderOf = (state: unknown) => {
  const s = state as Snap;
  return { entries: s.entries.map((e) => `${e.k}/${e.d}`), seen: s.seen.map(([k, d]) => `${k}/${d}`) };
};

describe('alert engine least recently used order', () => {
  it('should list entries and arrivals least recently used first, and forget the oldest to make room, also after a restore', () => {
    const { engine } = engineWithLog([SILENT, LOSS], { maxKeys: 3 });
    let t = 1_000;
    const arrive = (e: typeof engine, d: string, kind?: string) => e.onReadings([reading(d, t, kind)], t++, 0, 0);
    arrive(engine, 'a');
    arrive(engine, 'b');
    arrive(engine, 'c');
    arrive(engine, 'a');
    expect(orderOf(engine.snapshot())).toEqual({ entries: ['heart-rate/b', 'heart-rate/c', 'heart-rate/a'], seen: ['heart-rate/b', 'heart-rate/c', 'heart-rate/a'] });
    // The most recent used again: nothing moves.
    arrive(engine, 'a');
    arrive(engine, 'd');
    expect(orderOf(engine.snapshot())).toEqual({ entries: ['heart-rate/c', 'heart-rate/a', 'heart-rate/d'], seen: ['heart-rate/c', 'heart-rate/a', 'heart-rate/d'] });
    expect(engine.stats).toMatchObject({ evicted: 1, devicesForgotten: 1, refused: 0 });

    const restarted = engineWithLog([SILENT, LOSS], { maxKeys: 3 }).engine;
    restarted.restore(JSON.parse(JSON.stringify(engine.snapshot())) as unknown);
    arrive(restarted, 'c');
    // The same id in another kind is another device.
    arrive(restarted, 'a', 'bridge');
    expect(orderOf(restarted.snapshot())).toEqual({ entries: ['heart-rate/d', 'heart-rate/c', 'bridge/a'], seen: ['heart-rate/d', 'heart-rate/c', 'bridge/a'] });
    expect(restarted.stats).toMatchObject({ evicted: 1, devicesForgotten: 1 });
  });

  it('should keep the order a Map moved on every use keeps, for a random stream with restores', () => {
    const rnd = mulberry32(7);
    const maxKeys = 20;
    let { engine } = engineWithLog([SILENT, LOSS], { maxKeys });
    // The reference: a Map whose key is deleted and set again on each use, its first key forgotten when full.
    const model = new Map<string, true>();
    let forgotten = 0;
    let restores = 0;
    for (let i = 0; i < 3_000; i++) {
      const kind = rnd() < 0.3 ? 'bridge' : 'heart-rate';
      const d = `d${Math.floor(rnd() * rnd() * 40)}`;
      const key = `${kind}/${d}`;
      if (model.has(key)) model.delete(key);
      else if (model.size >= maxKeys) {
        model.delete(model.keys().next().value!);
        forgotten++;
      }
      model.set(key, true);
      engine.onReadings([reading(d, 1_000 + i, kind)], 1_000 + i, 0, 0);
      if (rnd() < 0.01) {
        const stats = engine.stats;
        const state = JSON.parse(JSON.stringify(engine.snapshot())) as unknown;
        engine = engineWithLog([SILENT, LOSS], { maxKeys }).engine;
        engine.restore(state);
        Object.assign(engine.stats, stats);
        restores++;
      }
      const order = orderOf(engine.snapshot());
      expect(order.seen).toEqual([...model.keys()]);
      expect(order.entries).toEqual([...model.keys()]);
    }
    expect(restores).toBeGreaterThan(0);
    expect(engine.stats.devicesForgotten).toBe(forgotten);
    expect(engine.stats.evicted).toBe(forgotten);
    expect(forgotten).toBeGreaterThan(100);
  });
});
