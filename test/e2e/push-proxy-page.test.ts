import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPushProxy, type TestPushProxy } from '../helpers/push-proxy.js';
import { startLocalPushService, type LocalPushService } from '../helpers/push-service.js';
import { startSseSource, type SseSource } from '../helpers/sse-source.js';
import { makeTestPki } from '../helpers/tls-certs.js';
import { observe, waitFor, waitForValue } from '../helpers/wait.js';

/**
 * The phone page (/app/) in real headless Chromium against the real push proxy. Two things a
 * headless browser lacks are supplied: a push service (PushManager.subscribe rejects there with
 * "Registration failed", so an init script makes subscribe() return a subscription of the local
 * push service, which the proxy really pushes to), and a screen that turns off (visibility is
 * emulated by redefining document.visibilityState and dispatching `visibilitychange`; CDP's
 * Page.setWebLifecycleState and Emulation.setFocusEmulationEnabled do not fire that event).
 * Pushes reach the service worker through the DevTools protocol (ServiceWorker.deliverPushMessage)
 * carrying the bytes the proxy sent, as the local push service decrypted them.
 */
// Browser globals of the page.evaluate / addInitScript bodies (they run in the page; tsconfig has no DOM lib).
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any, navigator: any, PushManager: any, window: any;

let source: SseSource;
let push: LocalPushService;
let proxy: TestPushProxy;
let browser: Browser;

beforeAll(async () => {
  const pki = makeTestPki();
  source = await startSseSource();
  push = await startLocalPushService(pki);
  proxy = await startTestPushProxy({ gatewayUrl: source.url, pki });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
});
afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await push?.close();
  await source?.close();
});

const shownIds = (page: Page): Promise<number[]> => page.$$eval('#alerts li', (lis) => lis.map((li) => Number((li as any).dataset['eventId'])).reverse());

async function setVisibility(page: Page, state: 'hidden' | 'visible'): Promise<void> {
  await page.evaluate((s) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => s });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => s === 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  }, state);
}

// The service worker's dedupe reads Cache Storage on disk; with a busy disk (the suite's fsyncs)
// that takes seconds, so waits on what it shows get longer deadlines.
const WORKER_WAIT = 25_000;

/**
 * The ids the service worker told the page it pushed (its `pushed` message, sent after its
 * showNotification resolved), in order. The test waits on these and reads the notifications only
 * then, never while one is being shown: Chromium's getNotifications() keeps a stored notification
 * only if the platform already lists it as displayed or it was created after the read began, and
 * deletes every other one from its database (platform_notification_context_impl.cc,
 * DoReadAllNotificationDataForServiceWorkerRegistration). A poll that lands between the worker's
 * write and the display loses that notification from every later read, though it stays on screen;
 * polling did that in 2 of 17 runs on a busy disk. The worker itself never reads them.
 */
const pushedIds = (page: Page): Promise<string[]> => page.evaluate(() => [...(window.__pushedIds ?? [])]);

describe('phone page /app/', () => {
  it('should show alerts live, hand the stream over when hidden, show each pushed alert once, and resume without a gap when shown', async () => {
    const sub = push.subscribe('chromium');
    const context = await browser.newContext();
    await context.grantPermissions(['notifications'], { origin: proxy.url });
    await context.addInitScript((json) => {
      const fake = { endpoint: json.endpoint, expirationTime: null, options: {}, toJSON: () => json, getKey: () => null, unsubscribe: async () => true };
      let subscribed = false;
      PushManager.prototype.subscribe = async function () {
        subscribed = true;
        return fake;
      };
      PushManager.prototype.getSubscription = async function () {
        return subscribed ? fake : null;
      };
    }, sub.json);
    await context.addInitScript(() => {
      window.__pushedIds = [];
      navigator.serviceWorker?.addEventListener('message', (e: any) => {
        if (e.data?.type === 'pushed') window.__pushedIds.push(String(e.data.eventId));
      });
    });
    const page = await context.newPage();
    await page.goto(`${proxy.url}/app/`);
    expect(await page.evaluate(async () => (await navigator.serviceWorker.ready).active?.scriptURL)).toBe(`${proxy.url}/app/sw.js`);
    expect(await page.evaluate(async () => (await fetch('manifest.webmanifest')).json())).toMatchObject({ start_url: '/app/', display: 'standalone' });

    // 1. Live over SSE.
    await waitFor(() => source.open() === 1, { what: 'the page stream' });
    const live = [await source.append(), await source.append(), await source.append()];
    await waitForValue(() => shownIds(page), (s) => s.length === 3, { what: 'three alerts on the page' });
    expect(await shownIds(page)).toEqual(live);

    // 2. Hidden: the page posts a hand-off after the last id it saw.
    await setVisibility(page, 'hidden');
    const handoff = await waitForValue(() => page.evaluate(() => document.body.dataset['handoff'] ?? null), (v) => v !== null, { what: 'the hand-off' });
    const state = await proxy.get(`/v1/handoffs/${handoff!}`);
    expect(state.body).toMatchObject({ state: 'active', startEventId: String(live[2]) });
    await waitFor(() => proxy.streamCount() === 1 && source.open() === 1, { what: 'the page stream closed, the proxy stream open' });

    // 3. Pushed while asleep: each shown as one notification, even when delivered twice.
    const asleep = [await source.append(), await source.append(), await source.append()];
    const payloads = await waitForValue(() => push.received.filter((r) => r.subscription === 'chromium' && r.status === 201).map((r) => r.payload!), (p) => p.length === 3, { what: 'three pushes' });
    expect(payloads.map((p) => (JSON.parse(p) as { eventId: string }).eventId)).toEqual(asleep.map(String));
    const cdp = await context.newCDPSession(page);
    const registrations: { registrationId: string; scopeURL: string }[] = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
    await cdp.send('ServiceWorker.enable');
    const reg = await waitForValue(() => registrations.find((r) => r.scopeURL === `${proxy.url}/app/`), (r) => r !== undefined, { what: 'the service worker registration' });
    const shown = (): Promise<{ eventId: string; timestamp: number }[]> =>
      page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications()).map((n: any) => ({ eventId: String(n.data.eventId), timestamp: Number(n.timestamp) })));
    const notifications = async (): Promise<string[]> => (await shown()).map((n) => n.eventId);
    const deliver = (data: string) => cdp.send('ServiceWorker.deliverPushMessage', { origin: proxy.url, registrationId: reg!.registrationId, data });
    await deliver(payloads[0]!);
    await waitForValue(() => pushedIds(page), (p) => p.length === 1, { what: 'the first push shown', timeoutMs: WORKER_WAIT });
    const [firstShown] = await shown();
    expect(firstShown?.eventId).toBe(String(asleep[0]));
    await deliver(payloads[0]!); // the same push again (a proxy restart repeats an unacked one)
    await deliver(payloads[1]!);
    await deliver(payloads[2]!);
    await waitForValue(() => pushedIds(page), (p) => p.length >= 3, { what: 'three pushes shown', timeoutMs: WORKER_WAIT });
    expect((await pushedIds(page)).sort()).toEqual(asleep.map(String).sort());
    expect((await notifications()).sort()).toEqual(asleep.map(String).sort());
    // Not shown a second time: a repeated showNotification would have replaced it with a newer timestamp.
    expect((await shown()).find((n) => n.eventId === firstShown!.eventId)!.timestamp).toBe(firstShown!.timestamp);
    // The open page got them from the service worker too, once each.
    await waitForValue(() => shownIds(page), (s) => s.length === 6, { what: 'six alerts on the page', timeoutMs: WORKER_WAIT });

    // An alert the proxy cannot push before the phone wakes (the push service fails it for now).
    push.answerNext('chromium', ...Array.from({ length: 1000 }, () => ({ status: 500 })));
    const stuck = await source.append();
    await waitFor(() => push.received.some((r) => r.subscription === 'chromium' && r.status === 500), { what: 'the failing push' });

    // 4. Shown again: the page takes the stream back and resumes after the proxy's last id.
    await setVisibility(page, 'visible');
    await waitForValue(() => page.evaluate(() => document.body.dataset['handoff'] ?? null), (v) => v === null, { what: 'the take-back' });
    expect((await proxy.get(`/v1/handoffs/${handoff!}`)).body).toMatchObject({ state: 'ended', endedReason: 'taken_back', lastDeliveredEventId: String(asleep[2]) });
    await waitFor(() => proxy.streamCount() === 0 && source.open() === 1, { what: 'the page stream again, the proxy stream closed' });
    expect(source.requests.at(-1)!.path).toContain(`lastEventId=${asleep[2]}`);
    const after = [await source.append(), await source.append()];
    await waitForValue(() => shownIds(page), (s) => s.length === 9, { what: 'the alerts after the take-back' });
    expect(await shownIds(page)).toEqual([...live, ...asleep, stuck, ...after]);
    expect(await notifications()).toHaveLength(3);

    // 5. The same push once more after the worker was stopped (its memory of ids gone): still not
    // shown again, by the mark it keeps in Cache Storage. A probe push is shown to know the
    // restarted worker ran; the repeat was delivered before it, and gets 500 ms more after it.
    await cdp.send('ServiceWorker.stopAllWorkers');
    await deliver(payloads[0]!);
    await deliver(JSON.stringify({ eventId: 'probe', stream: 'probe', alert: { id: 'probe' } }));
    await waitForValue(() => pushedIds(page), (p) => p.includes('probe'), { what: 'the probe shown', timeoutMs: WORKER_WAIT });
    await observe(500);
    expect(await pushedIds(page)).toEqual([...asleep.map(String), 'probe']);
    expect(await notifications()).toContain('probe');
    expect((await shown()).find((n) => n.eventId === firstShown!.eventId)!.timestamp).toBe(firstShown!.timestamp);
    expect(await notifications()).toHaveLength(4);
    await context.close();
  }, 150_000);
});
