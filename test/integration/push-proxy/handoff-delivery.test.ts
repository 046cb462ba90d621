import { get } from 'node:http';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestPushProxy, type TestPushProxy } from '../../helpers/push-proxy.js';
import { startLocalPushService, type LocalPushService } from '../../helpers/push-service.js';
import { startSseSource, type SseSource } from '../../helpers/sse-source.js';
import { makeTestPki, type TestPki } from '../../helpers/tls-certs.js';
import { ManualClock } from '../../../gateway/clock.js';
import { sampleOr0 } from '../../helpers/metrics.js';
import { waitFor, waitForValue } from '../../helpers/wait.js';

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(pushProxy: Record<string, unknown> = {}, clock?: ManualClock): Promise<{ source: SseSource; push: LocalPushService; proxy: TestPushProxy }> {
  const source = await startSseSource();
  cleanups.push(() => source.close());
  const push = await startLocalPushService(pki);
  cleanups.push(() => push.close());
  const proxy = await startTestPushProxy({ gatewayUrl: source.url, pki, pushProxy, ...(clock === undefined ? {} : { clock }) });
  cleanups.push(() => proxy.close());
  return { source, push, proxy };
}

const ids = (payloads: Record<string, unknown>[]): string[] => payloads.map((p) => String(p['eventId']));

describe('push proxy delivery', () => {
  it('should push exactly the events after the handed-over id, decrypted and in order', async () => {
    const { source, push, proxy } = await setup();
    const before: number[] = [];
    for (let i = 0; i < 5; i++) before.push(await source.append());
    const sub = push.subscribe('phone-1');
    const res = await proxy.post({ subscription: sub.json, lastEventId: String(before[2]), stream: 'alerts', filter: {} });
    expect(res.status).toBe(201);
    const after: number[] = [];
    for (let i = 0; i < 5; i++) after.push(await source.append({ severity: i % 2 === 0 ? 'critical' : 'info' }));
    const expected = [before[3]!, before[4]!, ...after].map(String);
    const got = await waitForValue(() => push.delivered('phone-1'), (d) => d.length >= expected.length, { what: 'the pushes' });
    expect(ids(got)).toEqual(expected);
    // The decrypted payload is the alert of the wire format, with its event id.
    const first = got[0]!['alert'] as Record<string, unknown>;
    expect(first['offset']).toBe(before[3]);
    expect(typeof first['summary']).toBe('string');
    const headers = push.received.filter((r) => r.status === 201);
    expect(headers.every((r) => r.error === null && r.ttl === '3600')).toBe(true);
    expect(headers.map((r) => r.urgency).slice(2)).toEqual(['high', 'low', 'high', 'low', 'high']);
    expect(headers.every((r, i) => r.topic === (got[i]!['alert'] as { id: string }).id)).toBe(true);
    const state = await proxy.get(`/v1/handoffs/${String(res.body['id'])}`);
    expect(state.body).toMatchObject({ state: 'active', delivered: 7, lastDeliveredEventId: String(after[4]) });
  });

  it('should end the hand-off when the push service answers 410', async () => {
    const { source, push, proxy } = await setup();
    const sub = push.subscribe('gone');
    const start = await source.append();
    const { body } = await proxy.post({ subscription: sub.json, lastEventId: String(start) });
    push.answerNext('gone', { status: 410 });
    await source.append();
    await source.append();
    const state = await waitForValue(() => proxy.get(`/v1/handoffs/${String(body['id'])}`), (s) => s.body['state'] === 'ended', { what: 'the hand-off to end' });
    expect(state.body['endedReason']).toBe('gone');
    expect(push.received.filter((r) => r.subscription === 'gone')).toHaveLength(1);
    expect(proxy.streamCount()).toBe(0);
  });

  it('should retry a 429 only after its Retry-After', async () => {
    const { source, push, proxy } = await setup();
    const sub = push.subscribe('busy');
    const start = await source.append();
    await proxy.post({ subscription: sub.json, lastEventId: String(start) });
    push.answerNext('busy', { status: 429, retryAfter: '1' }, { status: 500 });
    const e = await source.append();
    await waitFor(() => push.delivered('busy').length === 1, { what: 'the push after the retries' });
    const attempts = push.received.filter((r) => r.subscription === 'busy');
    expect(attempts.map((r) => r.status)).toEqual([429, 500, 201]);
    // retryInitialMs is 20 ms here: only Retry-After explains a wait of a second.
    expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(990);
    expect(ids(push.delivered('busy'))).toEqual([String(e)]);
  });

  it('should send the small payload (id + summary) after a 413', async () => {
    const { source, push, proxy } = await setup();
    const sub = push.subscribe('small');
    const start = await source.append();
    await proxy.post({ subscription: sub.json, lastEventId: String(start) });
    push.answerNext('small', { status: 413 });
    const e = await source.append({ summary: 'bridge 3 overloaded' });
    const [p] = await waitForValue(() => push.delivered('small'), (d) => d.length === 1);
    expect(p).toEqual({ v: 1, eventId: String(e), stream: 'alerts', id: expect.any(String), summary: 'bridge 3 overloaded' });
  });

  it('should answer the take-back with the last delivered id, from which the stream resumes with no gap and no duplicate', async () => {
    const { source, push, proxy } = await setup();
    const sub = push.subscribe('taker');
    const seen = [await source.append(), await source.append()];
    const { body } = await proxy.post({ subscription: sub.json, lastEventId: String(seen[1]) });
    const pushed = [await source.append(), await source.append(), await source.append()];
    await waitFor(() => push.delivered('taker').length === 3, { what: 'three pushes' });
    const back = await proxy.del(String(body['id']));
    expect(back.body['lastDeliveredEventId']).toBe(String(pushed[2]));
    const later = [await source.append(), await source.append()];
    // The page resumes after that id: it gets exactly what came later.
    const res = await fetch(`${source.url}/v1/streams/alerts`, { headers: { 'last-event-id': String(back.body['lastDeliveredEventId']) } });
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/^id: /gm) ?? []).length < 2) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect((text.match(/^id: (\d+)$/gm) ?? []).map((l) => Number(l.slice(4)))).toEqual(later);
    // Nothing more is pushed after the take-back.
    expect(ids(push.delivered('taker'))).toEqual(pushed.map(String));
    expect((await proxy.get(`/v1/handoffs/${String(body['id'])}`)).body).toMatchObject({ state: 'ended', endedReason: 'taken_back' });
  });

  it('should hold one gateway connection per distinct stream and filter, shared by its hand-offs', async () => {
    const { source, push, proxy } = await setup();
    const start = await source.append();
    for (let i = 0; i < 6; i++) {
      const res = await proxy.post({ subscription: push.subscribe(`p${i}`).json, lastEventId: String(start), filter: i < 4 ? { minSeverity: 'warning' } : { device: 'athlete-1' } });
      expect(res.status).toBe(201);
    }
    await waitFor(() => source.open() === 2, { what: 'two stream connections' });
    expect(proxy.streamCount()).toBe(2);
    const e = await source.append({ deviceId: 'athlete-1', severity: 'critical' });
    await waitFor(() => [0, 1, 2, 3, 4, 5].every((i) => push.delivered(`p${i}`).length === 1), { what: 'every phone pushed' });
    expect([0, 1, 2, 3, 4, 5].map((i) => ids(push.delivered(`p${i}`))[0])).toEqual(Array(6).fill(String(e)));
    expect(source.open()).toBe(2);
  });

  it('should resume a dropped gateway stream after its last event, with no gap and no duplicate', async () => {
    const { source, push, proxy } = await setup();
    const start = await source.append();
    await proxy.post({ subscription: push.subscribe('drop').json, lastEventId: String(start) });
    const a = await source.append();
    await waitFor(() => push.delivered('drop').length === 1);
    source.dropAll();
    const b = await source.append();
    await waitFor(() => push.delivered('drop').length === 2, { what: 'the push after the reconnect' });
    expect(ids(push.delivered('drop'))).toEqual([String(a), String(b)]);
    expect(source.requests.at(-1)!.lastEventId).toBe(String(a));
  });

  it('should refuse malformed hand-offs with a 400 naming every problem', async () => {
    const { push, proxy } = await setup();
    const good = push.subscribe('x').json;
    const bad = await proxy.post({ subscription: { endpoint: 'http://push.example/x', keys: { p256dh: 'AAAA', auth: good.keys.auth } }, lastEventId: 'abc', filter: { colour: 'red' } });
    expect(bad.status).toBe(400);
    expect(bad.body['error']).toBe('GW_ERR_HANDOFF_INVALID');
    expect(bad.body['problems']).toEqual([
      'subscription.endpoint: must be https, got http:',
      'subscription.keys.p256dh: must be an uncompressed P-256 point (65 bytes, base64url)',
      'lastEventId: must be the id of an event of the stream (decimal digits), or null when none was received',
      'filter.colour: unknown filter (known: kind, device, rule, minSeverity, where)',
    ]);
    const notJson = await fetch(`${proxy.url}/v1/handoffs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"subscription":' });
    expect(notJson.status).toBe(400);
    expect((await proxy.get('/v1/handoffs/nope')).status).toBe(404);
    // The page's stream pass-through reaches the gateway's streams only.
    // (node:http, since fetch would normalize the dot segment away before sending).
    const status = await new Promise<number | undefined>((resolve) => get({ host: '127.0.0.1', port: proxy.port, path: '/v1/streams/%2e%2e' }, (r) => resolve(r.resume().statusCode)));
    expect(status).toBe(400);
  });

  it('should refuse a hand-off beyond maxHandoffs with 503, and replace the hand-off of the same subscription', async () => {
    const { push, proxy } = await setup({ maxHandoffs: 2 });
    const a = push.subscribe('a').json;
    const first = await proxy.post({ subscription: a, lastEventId: null });
    expect((await proxy.post({ subscription: push.subscribe('b').json, lastEventId: null })).status).toBe(201);
    const third = await proxy.post({ subscription: push.subscribe('c').json, lastEventId: null });
    expect(third.status).toBe(503);
    expect(third.body['error']).toBe('GW_ERR_HANDOFF_LIMIT');
    // The same phone handing over again (no take-back between) replaces its hand-off: not refused.
    expect((await proxy.post({ subscription: a, lastEventId: null })).status).toBe(201);
    expect((await proxy.get(`/v1/handoffs/${String(first.body['id'])}`)).body['endedReason']).toBe('replaced');
  });

  it('should give a hand-off joining a shared stream with an earlier id its earlier events, and the others no duplicate', async () => {
    const { source, push, proxy } = await setup();
    const e = [await source.append(), await source.append(), await source.append(), await source.append()];
    await proxy.post({ subscription: push.subscribe('late').json, lastEventId: String(e[3]) });
    const next = await source.append();
    await waitFor(() => push.delivered('late').length === 1);
    await proxy.post({ subscription: push.subscribe('early').json, lastEventId: String(e[0]) });
    const last = await source.append();
    await waitFor(() => push.delivered('early').length === 5 && push.delivered('late').length === 2, { what: 'both phones pushed' });
    expect(ids(push.delivered('early'))).toEqual([e[1], e[2], e[3], next, last].map(String));
    expect(ids(push.delivered('late'))).toEqual([next, last].map(String));
    expect(proxy.streamCount()).toBe(1);
  });

  it('should end expired hand-offs on the sweep schedule and delete them after endedRetentionMs', async () => {
    const clock = new ManualClock(Date.now());
    const { source, push, proxy } = await setup({ handoffTtlMs: 60_000, endedRetentionMs: 10_000, sweepSchedule: '* * * * * *' }, clock);
    const { body } = await proxy.post({ subscription: push.subscribe('sleepy').json, lastEventId: String(await source.append()) });
    await waitFor(() => source.open() === 1);
    clock.advance(60_000);
    const state = await waitForValue(() => proxy.get(`/v1/handoffs/${String(body['id'])}`), (s) => s.body['state'] === 'ended', { what: 'the sweep' });
    expect(state.body['endedReason']).toBe('expired');
    await waitFor(() => source.open() === 0, { what: 'its stream closed' });
    clock.advance(10_000);
    await waitForValue(() => proxy.get(`/v1/handoffs/${String(body['id'])}`), (s) => s.status === 404, { what: 'the ended hand-off deleted' });
    await source.append();
    expect(push.received).toHaveLength(0);
  });

  it('should end the hand-offs of a stream the gateway refuses (404) as stream_refused', async () => {
    const { push, proxy } = await setup();
    const { body } = await proxy.post({ subscription: push.subscribe('lost').json, lastEventId: null, stream: 'no-such-stream' });
    const state = await waitForValue(() => proxy.get(`/v1/handoffs/${String(body['id'])}`), (s) => s.body['state'] === 'ended', { what: 'the hand-off to end' });
    expect(state.body['endedReason']).toBe('stream_refused');
    await waitFor(() => proxy.streamCount() === 0);
    expect(sampleOr0(await proxy.registry.metrics(), 'pulsegate_push_proxy_handoffs_ended_total', { reason: 'stream_refused' })).toBe(1);
  });

  it('should log a push as sent before sending it, and ack it and move the position only after the 201', async () => {
    const { source, push, proxy } = await setup();
    const start = await source.append();
    const { body } = await proxy.post({ subscription: push.subscribe('slow').json, lastEventId: String(start) });
    const id = String(body['id']);
    const release = push.hold('slow');
    const e = await source.append();
    await waitFor(() => push.waiting('slow') === 1, { what: 'the push to arrive at the push service' });
    // In flight: in the log as sent, not acked; the position has not moved.
    expect(proxy.store.unacked(id)).toEqual([e]);
    expect((await proxy.get(`/v1/handoffs/${id}`)).body).toMatchObject({ lastDeliveredEventId: String(start), delivered: 0 });
    release();
    await waitForValue(() => proxy.get(`/v1/handoffs/${id}`), (s) => s.body['lastDeliveredEventId'] === String(e), { what: 'the ack' });
    expect(proxy.store.unacked(id)).toEqual([]);
  });
});

