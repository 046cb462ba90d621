import { EventSource } from 'eventsource';
import { afterEach, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../helpers/random.js';
import { openSse, type RawSseClient } from '../../helpers/sse-client.js';
import { waitFor } from '../../helpers/wait.js';
import { randomAlert, startHub, type Hub } from './hub-harness.js';

let hub: Hub | null = null;
afterEach(async () => {
  await hub?.close();
  hub = null;
});

/** A raw client that drops its connection after a random number of events and resumes with the last id it saw. */
function hopper(h: Hub, startId: number, rand: () => number): { ids: number[]; datas: string[]; stop(): void; lastId(): number } {
  const ids: number[] = [];
  const datas: string[] = [];
  let stopped = false;
  let current: RawSseClient | null = null;
  const lastId = (): number => (ids.length > 0 ? ids[ids.length - 1]! : startId);
  void (async () => {
    while (!stopped) {
      let c: RawSseClient;
      try {
        c = await openSse(h.url('/v1/streams/alerts'), { 'last-event-id': String(lastId()) });
      } catch {
        // Cut while connecting (closeAllConnections): connect again.
        continue;
      }
      current = c;
      expect(c.status).toBe(200);
      const quota = 1 + Math.floor(rand() * 60);
      let taken = 0;
      while (!stopped && taken < quota && !c.isEnded()) {
        const evs = c.events.splice(0);
        for (const e of evs) {
          if (e.event !== 'alert') continue;
          ids.push(Number(e.id));
          datas.push(e.data);
          taken += 1;
        }
        await new Promise((r) => setTimeout(r, 2));
      }
      // Whatever else arrived on this connection is dropped with it: the resume must send it again.
      c.close();
    }
  })();
  return { ids, datas, lastId, stop: () => ((stopped = true), current?.close()) };
}

describe('SSE resume', () => {
  it('resumes at random ids while alerts are appended: every alert exactly once, in offset order, as the log has it (raw sockets and EventSource)', async () => {
    hub = await startHub({ delivery: { retryMs: 20, heartbeatMs: 200 } });
    const h = hub;
    const rand = mulberry32(1301);
    await h.appendOther(); // offset 0: every alert id can be resumed from
    const offsets: number[] = [];
    for (let i = 0; i < 80; i++) {
      offsets.push(await h.appendAlert(randomAlert(rand, i)));
      if (rand() < 0.3) await h.appendOther();
    }
    const pick = (): number => (rand() < 0.2 ? 0 : offsets[Math.floor(rand() * offsets.length)]!);
    const hoppers = [0, 1, 2, 3].map(() => {
      const start = pick();
      return { start, h: hopper(h, start, mulberry32(Math.floor(rand() * 1e9))) };
    });
    const sources = [0, 1, 2].map(() => {
      const start = pick();
      const seen: { id: number; data: string }[] = [];
      const es = new EventSource(h.url(`/v1/streams/alerts?lastEventId=${start}`));
      es.addEventListener('alert', (e) => seen.push({ id: Number(e.lastEventId), data: e.data }));
      return { start, es, seen };
    });
    let n = 80;
    for (let burst = 0; burst < 12; burst++) {
      const size = 1 + Math.floor(rand() * 40);
      await Promise.all(Array.from({ length: size }, (_, k) => h.appendAlert(randomAlert(rand, n + k)).then((o) => offsets.push(o))));
      n += size;
      if (rand() < 0.5) await h.appendOther();
      // Cut every connection twice: EventSource reconnects with the Last-Event-ID header it kept.
      if (burst === 4 || burst === 9) h.http.app.server.closeAllConnections();
      await new Promise((r) => setTimeout(r, 5));
    }
    offsets.sort((a, b) => a - b);
    const last = offsets[offsets.length - 1]!;
    await waitFor(() => hoppers.every((x) => x.h.lastId() >= last) && sources.every((s) => s.seen.length > 0 && s.seen[s.seen.length - 1]!.id >= last), { what: 'every client at the last alert', timeoutMs: 20_000 });
    for (const x of hoppers) x.h.stop();
    for (const s of sources) s.es.close();

    const records = await h.alertRecords();
    expect(records.map((r) => r.offset)).toEqual(offsets);
    const expected = (start: number) => records.filter((r) => r.offset > start);
    for (const { start, h: hop } of hoppers) {
      const want = expected(start);
      expect(hop.ids).toEqual(want.map((r) => r.offset));
      hop.datas.forEach((d, i) => expect(JSON.parse(d)).toEqual({ ...JSON.parse(want[i]!.payload.toString('utf8')), offset: want[i]!.offset }));
    }
    for (const { start, seen } of sources) {
      expect(seen.map((s) => s.id)).toEqual(expected(start).map((r) => r.offset));
    }
  }, 30_000);

  it('starts live without a Last-Event-ID, and a malformed one gets 400 GW_ERR_LAST_EVENT_ID', async () => {
    hub = await startHub();
    const h = hub;
    const rand = mulberry32(7);
    await h.appendOther();
    const before = await h.appendAlert(randomAlert(rand, 0));
    const live = await openSse(h.url('/v1/streams/alerts'));
    expect(live.status).toBe(200);
    expect(live.headers['content-type']).toMatch(/^text\/event-stream/);
    const after = await h.appendAlert(randomAlert(rand, 1));
    await waitFor(() => live.events.some((e) => e.event === 'alert'));
    expect(live.events.filter((e) => e.event === 'alert').map((e) => Number(e.id))).toEqual([after]);
    expect(before).toBeLessThan(after);
    live.close();
    for (const bad of ['abc', '-1', '1e3', ' 5', '05', '0x10', '99999999999999999', String(h.log.nextOffset)]) {
      const c = await openSse(h.url('/v1/streams/alerts'), { 'last-event-id': bad });
      expect(c.status, bad).toBe(400);
      expect(JSON.parse(await c.body).error, bad).toBe('GW_ERR_LAST_EVENT_ID');
    }
    const q = await openSse(h.url('/v1/streams/alerts?lastEventId=x1'));
    expect(q.status).toBe(400);
    expect(JSON.parse(await q.body)).toMatchObject({ error: 'GW_ERR_LAST_EVENT_ID' });
  });
});
