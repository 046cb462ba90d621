import { afterEach, describe, expect, it } from 'vitest';
import { sampleOr0 } from '../../helpers/metrics.js';
import { mulberry32 } from '../../helpers/random.js';
import { openSse } from '../../helpers/sse-client.js';
import { observe, waitFor, waitForValue } from '../../helpers/wait.js';
import { randomAlert, startHub, type Hub } from './hub-harness.js';

let hub: Hub | null = null;
afterEach(async () => {
  await hub?.close();
  hub = null;
});

interface PollBody {
  events: { offset: number }[];
  lastEventId: string | null;
  after: string;
}

describe('long-poll and lag', () => {
  it('/v1/alerts/poll answers as soon as an alert after `after` is appended, and with an empty list after waitMs', async () => {
    hub = await startHub();
    const h = hub;
    const rand = mulberry32(3);
    await h.appendOther();
    const a = await h.appendAlert(randomAlert(rand, 0));
    // Already there: answered at once.
    const now = (await (await fetch(h.url('/v1/alerts/poll?after=0&waitMs=20000'))).json()) as PollBody;
    expect(now.events.map((e) => e.offset)).toEqual([a]);
    expect(now.lastEventId).toBe(String(a));
    // Nothing after it: waits, and the append ends the wait.
    const t0 = Date.now();
    const pending = fetch(h.url(`/v1/alerts/poll?after=${now.after}&waitMs=20000`)).then((r) => r.json() as Promise<PollBody>);
    let settled = false;
    void pending.then(() => (settled = true));
    // Bounded observation: the poll is still waiting 200 ms later.
    await observe(200);
    expect(settled).toBe(false);
    await h.appendOther();
    const b = await h.appendAlert(randomAlert(rand, 1));
    const woke = await pending;
    expect(woke.events.map((e) => e.offset)).toEqual([b]);
    expect(Date.now() - t0).toBeLessThan(20_000);
    // Nothing comes: an empty list after waitMs, and `after` moves past what was looked at.
    await h.appendOther();
    const t1 = Date.now();
    const empty = (await (await fetch(h.url(`/v1/alerts/poll?after=${woke.after}&waitMs=300`))).json()) as PollBody;
    expect(empty.events).toEqual([]);
    expect(empty.lastEventId).toBe(null);
    expect(Date.now() - t1).toBeGreaterThanOrEqual(290);
    expect(Number(empty.after)).toBe(h.log.nextOffset - 1);
    // limit, and bad parameters.
    for (let i = 0; i < 5; i++) await h.appendAlert(randomAlert(rand, 10 + i));
    const two = (await (await fetch(h.url(`/v1/alerts/poll?after=${empty.after}&limit=2`))).json()) as PollBody;
    expect(two.events).toHaveLength(2);
    expect((await fetch(h.url('/v1/alerts/poll?waitMs=999999999'))).status).toBe(400);
    const bad = await fetch(h.url('/v1/alerts/poll?after=abc'));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toBe('GW_ERR_LAST_EVENT_ID');
  });

  it('tells a live client that falls behind by more than lagWarnMs with `event: lag`, and shows its lag on /metrics', async () => {
    hub = await startHub({ delivery: { heartbeatMs: 100, lagWarnMs: 1, clientBufferBytes: 64 * 1024 * 1024 } });
    const h = hub;
    const rand = mulberry32(8);
    await h.appendOther();
    const c = await openSse(h.url('/v1/streams/alerts'));
    c.pause();
    // Enough to fill loopback's buffers: the rest waits in the hub's, and the client is behind.
    for (let round = 0; round < 400; round++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => h.appendAlert({ ...randomAlert(rand, round * 100 + i), summary: 'y'.repeat(400) })));
      const text = await h.registry.metrics();
      if (sampleOr0(text, 'pulsegate_delivery_client_lag_offsets', { client: '1', stream: 'alerts' }) > 0) break;
    }
    const lagOffsets = await waitForValue(async () => sampleOr0(await h.registry.metrics(), 'pulsegate_delivery_client_lag_offsets', { client: '1', stream: 'alerts' }), (v) => v > 0);
    expect(lagOffsets).toBeGreaterThan(0);
    // A heartbeat finds it behind (still not reading) and queues the notice behind the backlog.
    await waitForValue(async () => sampleOr0(await h.registry.metrics(), 'pulsegate_delivery_lag_notices_total'), (v) => v > 0, { what: 'a lag notice' });
    c.resume();
    await waitFor(() => c.events.some((e) => e.event === 'lag'), { what: 'a lag event' });
    const lag = JSON.parse(c.events.find((e) => e.event === 'lag')!.data) as { behindOffsets: number; behindMs: number; replaying: boolean };
    expect(lag.replaying).toBe(false);
    expect(lag.behindOffsets).toBeGreaterThan(0);
    c.close();
  }, 60_000);
});
