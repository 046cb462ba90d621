import { afterEach, describe, expect, it } from 'vitest';
import { sampleOr0 } from '../../helpers/metrics.js';
import { mulberry32 } from '../../helpers/random.js';
import { openSse } from '../../helpers/sse-client.js';
import { waitFor } from '../../helpers/wait.js';
import { randomAlert, startHub, type Hub } from './hub-harness.js';

let hub: Hub | null = null;
afterEach(async () => {
  await hub?.close();
  hub = null;
});

describe('SSE bounds', () => {
  it('sends `earliest` with the first kept offset when the asked id was deleted by retention, then every alert from there once', async () => {
    hub = await startHub({}, { segmentMaxBytes: 4096 });
    const h = hub;
    const rand = mulberry32(99);
    await h.appendOther();
    const offsets: number[] = [];
    for (let i = 0; i < 60; i++) offsets.push(await h.appendAlert(randomAlert(rand, i)));
    const asked = offsets[3]!;
    const deleted = await h.log.deleteSegmentsBefore(offsets[30]!);
    expect(deleted.length).toBeGreaterThan(0);
    const first = h.log.firstOffset;
    expect(first).toBeGreaterThan(asked + 1);
    const c = await openSse(h.url('/v1/streams/alerts'), { 'last-event-id': String(asked) });
    expect(c.status).toBe(200);
    const last = offsets[offsets.length - 1]!;
    await waitFor(() => c.events.some((e) => e.event === 'alert' && Number(e.id) === last), { what: 'the replay to reach the last alert' });
    const earliest = c.events.filter((e) => e.event === 'earliest');
    expect(earliest).toHaveLength(1);
    expect(JSON.parse(earliest[0]!.data)).toEqual({ lastEventId: String(asked), firstOffset: first });
    // It comes before any alert, carries no id (the client's Last-Event-ID stays its own).
    expect(c.events.findIndex((e) => e.event === 'earliest')).toBeLessThan(c.events.findIndex((e) => e.event === 'alert'));
    expect(earliest[0]!.raw).not.toMatch(/^id:/m);
    expect(c.events.filter((e) => e.event === 'alert').map((e) => Number(e.id))).toEqual(offsets.filter((o) => o >= first));
    c.close();

    // The long-poll says the same.
    const res = await fetch(h.url(`/v1/alerts/poll?after=${asked}&limit=5`));
    const body = (await res.json()) as { events: { offset: number }[]; earliest: unknown };
    expect(body.earliest).toEqual({ lastEventId: String(asked), firstOffset: first });
    expect(body.events.map((e) => e.offset)).toEqual(offsets.filter((o) => o >= first).slice(0, 5));
  });

  it('closes a client that stops reading at its byte bound with a final overflow notice; it then catches up losslessly from the log', async () => {
    const bound = 32 * 1024;
    hub = await startHub({ delivery: { clientBufferBytes: bound, heartbeatMs: 60_000 } });
    const h = hub;
    const rand = mulberry32(4242);
    await h.appendOther();
    const c = await openSse(h.url('/v1/streams/alerts'));
    expect(c.status).toBe(200);
    c.pause();
    const offsets: number[] = [];
    let i = 0;
    // Loopback and kernel buffers take a few MB before the server's own buffer fills.
    while (sampleOr0(await h.registry.metrics(), 'pulsegate_delivery_clients_closed_total', { reason: 'overflow' }) === 0) {
      const batch = await Promise.all(Array.from({ length: 200 }, () => h.appendAlert({ ...randomAlert(rand, i++), summary: 'x'.repeat(300) })));
      offsets.push(...batch);
      if (i > 200_000) throw new Error('no overflow after 200000 alerts');
    }
    c.resume();
    await c.ended;
    const evs = c.events;
    const final = evs[evs.length - 1]!;
    expect(final.event).toBe('overflow');
    const notice = JSON.parse(final.data) as { reason: string; unsentBytes: number; bufferBytes: number; lastEventId: string };
    expect(notice.reason).toBe('overflow');
    expect(notice.bufferBytes).toBe(bound);
    // Closed at the bound: at most one frame (< 1 KiB here) past it.
    expect(notice.unsentBytes).toBeGreaterThan(bound);
    expect(notice.unsentBytes).toBeLessThan(bound + 1024);
    expect(c.comments.some((x) => x.startsWith('overflow'))).toBe(true);
    const got = evs.filter((e) => e.event === 'alert').map((e) => Number(e.id));
    expect(notice.lastEventId).toBe(String(got[got.length - 1]));
    expect(got).toEqual(offsets.slice(0, got.length));
    expect(got.length).toBeLessThan(offsets.length);

    // Reconnect with the last id: the rest comes from the log, nothing lost, nothing twice.
    const more = await h.appendAlert(randomAlert(rand, i++));
    offsets.push(more);
    const again = await openSse(h.url('/v1/streams/alerts'), { 'last-event-id': notice.lastEventId });
    await waitFor(() => again.events.some((e) => Number(e.id) === more), { what: 'the resumed stream to reach the newest alert', timeoutMs: 30_000 });
    const rest = again.events.filter((e) => e.event === 'alert').map((e) => Number(e.id));
    expect([...got, ...rest]).toEqual(offsets);
    // Replaying, the client was told how far behind it was.
    const lag = again.events.find((e) => e.event === 'lag');
    expect(lag).toBeDefined();
    expect(JSON.parse(lag!.data)).toMatchObject({ replaying: true });
    expect(JSON.parse(lag!.data).behindOffsets).toBeGreaterThan(0);
    // Written right after the replay's last event: it may still be on its way.
    await waitFor(() => again.events.some((e) => e.event === 'live'), { what: 'the live notice' });
    again.close();
  }, 60_000);

  it('refuses a client beyond delivery.maxClients with 503 and Retry-After, and sends heartbeats', async () => {
    hub = await startHub({ delivery: { maxClients: 2, heartbeatMs: 50, retryMs: 2500 } });
    const h = hub;
    const a = await openSse(h.url('/v1/streams/alerts'));
    const b = await openSse(h.url('/v1/streams/windows'));
    expect([a.status, b.status]).toEqual([200, 200]);
    const c = await openSse(h.url('/v1/streams/alerts'));
    expect(c.status).toBe(503);
    expect(c.headers['retry-after']).toBe('3');
    expect(JSON.parse(await c.body).error).toBe('GW_ERR_TOO_MANY_CLIENTS');
    const poll = await fetch(h.url('/v1/alerts/poll?waitMs=0'));
    expect(poll.status).toBe(503);
    await waitFor(() => a.comments.length >= 2, { what: 'heartbeat comments' });
    expect(a.retry).toBe(2500);
    a.close();
    await waitFor(() => h.hub.clients === 1, { what: 'the closed stream to leave' });
    const d = await openSse(h.url('/v1/streams/alerts'));
    expect(d.status).toBe(200);
    d.close();
    b.close();
  });
});
