import { afterEach, describe, expect, it } from 'vitest';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { encodeWindowTransition, toWindowTransition, type WindowTransition } from '../../../gateway/wire/window.js';
import { mulberry32 } from '../../helpers/random.js';
import { openSse } from '../../helpers/sse-client.js';
import { waitFor } from '../../helpers/wait.js';
import { startHub, type Hub } from './hub-harness.js';

let hub: Hub | null = null;
afterEach(async () => {
  await hub?.close();
  hub = null;
});

function randomWindow(rand: () => number, i: number): WindowTransition {
  const bridge = rand() < 0.6;
  return toWindowTransition({
    kind: bridge ? 'bridge' : 'heart_rate',
    deviceId: `${bridge ? 'br' : 'hr'}-${i % 4}`,
    sizeMs: 10_000,
    slideMs: 10_000,
    start: 1_700_000_000_000 + i * 10_000,
    end: 1_700_000_010_000 + i * 10_000,
    group: bridge ? { vehicleClass: ['CAR', 'TRUCK'][Math.floor(rand() * 2)]!, lane: '1' } : {},
    values: bridge ? { count: Math.floor(rand() * 40), speed_kmh_mean: 60 + rand() * 40 } : { bpm_mean: 60 + rand() * 100, bpm_count: 50 },
    revision: rand() < 0.2 ? 1 : 0,
  });
}

describe('window stream', () => {
  it('serves window results with revisions as `event: window`, filtered on group values and aggregates by where= and by a static stream', async () => {
    hub = await startHub({ delivery: { streams: { 'busy-trucks': { source: 'windows', kinds: ['bridge'], where: "vehicleClass = 'TRUCK' AND count > 20" } } } });
    const h = hub;
    const rand = mulberry32(61);
    await h.appendOther();
    const where = encodeURIComponent("kind = 'bridge' AND vehicleClass = 'TRUCK' AND count > 20");
    const dynamic = await openSse(h.url(`/v1/streams/windows?where=${where}`));
    const fixed = await openSse(h.url('/v1/streams/busy-trucks'));
    const all = await openSse(h.url('/v1/streams/windows'));
    const alertsOnly = await openSse(h.url('/v1/streams/alerts'));
    const ws: { w: WindowTransition; offset: number }[] = [];
    for (let i = 0; i < 150; i++) {
      const w = randomWindow(rand, i);
      ws.push({ w, offset: await h.log.appendDurable(RECORD_TYPES.window, encodeWindowTransition(w)) });
    }
    const want = ws.filter(({ w }) => w.kind === 'bridge' && w.group['vehicleClass'] === 'TRUCK' && (w.values['count'] ?? 0) > 20).map((x) => x.offset);
    expect(want.length).toBeGreaterThan(5);
    await waitFor(() => all.events.length >= ws.length && dynamic.events.length >= want.length && fixed.events.length >= want.length, { what: 'the window streams' });
    expect(all.events.map((e) => Number(e.id))).toEqual(ws.map((x) => x.offset));
    expect(all.events.every((e) => e.event === 'window')).toBe(true);
    expect(JSON.parse(all.events[0]!.data)).toEqual({ ...ws[0]!.w, offset: ws[0]!.offset });
    expect(dynamic.events.map((e) => Number(e.id))).toEqual(want);
    expect(fixed.events.map((e) => Number(e.id))).toEqual(want);
    expect(alertsOnly.events).toEqual([]);
    for (const c of [dynamic, fixed, all, alertsOnly]) c.close();
  });
});
