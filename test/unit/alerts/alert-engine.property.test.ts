import { describe, expect, it } from 'vitest';
import { AlertEngine } from '../../../gateway/alerts/alert-engine.js';
import { ManualClock } from '../../../gateway/clock.js';
import type { AlertRuleConfig } from '../../../gateway/config/config.js';
import type { WindowResult } from '../../../gateway/window/types.js';
import { alertId, type AlertTransition } from '../../../gateway/wire/alert.js';
import { mulberry32 } from '../../helpers/random.js';
import { hrWindow, rules } from './alert-engine-helpers.js';

/**
 * The engine against a brute-force reference of the rule semantics (README "Alerts"), written
 * independently of gateway/alerts/episode.ts: scans of runs over each key's first emissions in
 * start order. The engine gets random streams: keys interleaved, windows missing (gaps), late
 * corrections with other values, duplicates, and a checkpoint + restore into a new engine at
 * random points. Both must give the same episodes: ids, fire and resolve times, once each.
 */
interface Episode {
  id: string;
  episodeStart: number;
  firedAt: number;
  resolvedAt: number | null;
}

function reference(rule: { above: number; clear: number; forMs: number; clearForMs: number; id: string }, device: string, windows: readonly { start: number; end: number; value: number }[]): Episode[] {
  const sorted = [...windows].sort((a, b) => a.start - b.start);
  const episodes: Episode[] = [];
  let i = 0;
  const n = sorted.length;
  while (i < n) {
    // Looking for a fire: a run of contiguous breaching windows reaching `for`.
    let fireAt = -1;
    let runStart = -1;
    for (; i < n; i++) {
      const w = sorted[i]!;
      const breach = w.value > rule.above;
      if (!breach) {
        runStart = -1;
        continue;
      }
      if (runStart === -1 || sorted[i - 1]!.end < w.start) runStart = w.start;
      if (w.end - runStart >= rule.forMs) {
        fireAt = i;
        break;
      }
    }
    if (fireAt === -1) break;
    const episode: Episode = { id: alertId(rule.id, device, runStart), episodeStart: runStart, firedAt: sorted[fireAt]!.end, resolvedAt: null };
    episodes.push(episode);
    // Looking for the resolve: a run of contiguous clear windows reaching `clearFor`.
    let clearStart = -1;
    for (i = fireAt + 1; i < n; i++) {
      const w = sorted[i]!;
      if (!(w.value < rule.clear)) {
        clearStart = -1;
        continue;
      }
      if (clearStart === -1 || sorted[i - 1]!.end < w.start) clearStart = w.start;
      if (w.end - clearStart >= rule.clearForMs) {
        episode.resolvedAt = w.end;
        i++;
        break;
      }
    }
    if (episode.resolvedAt === null) break;
  }
  return episodes;
}

function episodesOf(log: readonly AlertTransition[]): Map<string, Episode[]> {
  const byDevice = new Map<string, Episode[]>();
  for (const t of log) {
    const list = byDevice.get(t.deviceId) ?? [];
    if (t.state === 'FIRING') {
      expect(list.some((e) => e.id === t.id)).toBe(false);
      list.push({ id: t.id, episodeStart: t.episodeStart, firedAt: t.firedAt, resolvedAt: null });
    } else {
      const e = list.find((x) => x.id === t.id);
      expect(e, `RESOLVED ${t.id} without its FIRING`).toBeDefined();
      expect(e!.resolvedAt, `second RESOLVED for ${t.id}`).toBeNull();
      e!.resolvedAt = t.resolvedAt;
    }
    byDevice.set(t.deviceId, list);
  }
  return byDevice;
}

describe('alert engine against the reference semantics', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) {
    it(`should give the reference's episodes for a random window stream (seed ${seed})`, () => {
      const rnd = mulberry32(seed);
      const forMs = [0, 10_000, 30_000][Math.floor(rnd() * 3)]!;
      const clearForMs = [0, 20_000][Math.floor(rnd() * 2)]!;
      const cfg: AlertRuleConfig = { id: 'r', kind: 'threshold', severity: 'warning', sensorKind: 'heart-rate', devices: '*', window: '10s', aggregate: 'bpm_mean', above: 180, clear: 170, for: forMs, clearFor: clearForMs };
      const devices = ['d0', 'd1', 'd2', 'd3'];
      // Each device's first emissions, in start order, with missing windows now and then.
      const firsts = new Map<string, WindowResult[]>();
      for (const d of devices) {
        const list: WindowResult[] = [];
        let start = 0;
        let level = 150 + rnd() * 40;
        for (let i = 0; i < 150; i++) {
          start += rnd() < 0.08 ? 20_000 : 10_000;
          // A random walk with jumps crosses the fire and clear levels often, and sits in the band.
          level = rnd() < 0.1 ? 150 + rnd() * 50 : Math.min(200, Math.max(140, level + (rnd() - 0.5) * 16));
          list.push(hrWindow(d, start, Math.round(level)));
        }
        firsts.set(d, list);
      }
      // The stream: devices interleaved, corrections and duplicates of recent windows.
      const stream: WindowResult[] = [];
      const next = new Map(devices.map((d) => [d, 0]));
      while ([...next.entries()].some(([d, i]) => i < firsts.get(d)!.length)) {
        const d = devices[Math.floor(rnd() * devices.length)]!;
        const i = next.get(d)!;
        const list = firsts.get(d)!;
        if (i >= list.length) continue;
        stream.push(list[i]!);
        next.set(d, i + 1);
        if (rnd() < 0.2 && i > 0) {
          const back = list[Math.max(0, i - 1 - Math.floor(rnd() * 3))]!;
          stream.push(rnd() < 0.5 ? back : { ...back, revision: back.revision + 1 + Math.floor(rnd() * 2), values: { bpm_mean: 140 + Math.round(rnd() * 60) } });
        }
      }
      const log: AlertTransition[] = [];
      const clock = new ManualClock(1_000);
      const make = () =>
        new AlertEngine({
          rules: rules([cfg]),
          maxKeys: 100,
          clock,
          record: (t) => {
            log.push(t);
            return { offset: log.length - 1, logged: false };
          },
        });
      let engine = make();
      let restores = 0;
      for (const w of stream) {
        if (rnd() < 0.02) {
          // A checkpoint and a restart from it (JSON, as the checkpoint file holds it).
          const state = JSON.parse(JSON.stringify(engine.snapshot())) as unknown;
          engine = make();
          engine.restore(state);
          restores++;
        }
        engine.onWindow(w);
      }
      expect(restores).toBeGreaterThan(0);
      const got = episodesOf(log);
      let total = 0;
      for (const d of devices) {
        const expected = reference({ id: 'r', above: 180, clear: 170, forMs, clearForMs }, d, firsts.get(d)!.map((w) => ({ start: w.start, end: w.end, value: w.values['bpm_mean']! })));
        total += expected.length;
        expect(got.get(d) ?? [], `device ${d}`).toEqual(expected);
      }
      // The streams must exercise the machine, not pass by having no episodes.
      expect(total).toBeGreaterThan(3);
    });
  }
});
