import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config/load-config.js';
import { consoleRoutes } from '../../gateway/http/console-routes.js';
import { createHttpServer, type HttpServer } from '../../gateway/http/http-server.js';
import type { WindowEvent } from '../../gateway/wire/window.js';
import { buildConsole } from '../../scripts/build-console.js';
import { collectPageErrors, launchChromium, screenshot } from '../helpers/browser.js';
import { waitForValue } from '../helpers/wait.js';

declare const document: any; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * The console's stream client (console/js/sse.js) in Chromium, against an HTTP server that
 * speaks the contract of GET /v1/streams/windows (text/event-stream, `id:` = log offset,
 * `event: window` / `lag`, resume from `?lastEventId=` / Last-Event-ID) from a script of
 * windows the test controls: resume after a dropped connection and after a reload, the
 * reconnecting state, the lag banner, corrections without duplicate points.
 */
const T0 = Math.floor(Date.now() / 10_000) * 10_000 - 30 * 60_000;
const events: WindowEvent[] = [];
const open = new Set<ServerResponse>();
/** The resume point each stream request asked for (null: from now). */
const resumes: Array<string | null> = [];
let down = false;
let server: HttpServer;
let browser: Browser;
let page: Page;
let errors: string[] = [];
const expectedErrors: RegExp[] = [];

function windowEvent(i: number, revision = 0, bpm = 60 + i): WindowEvent {
  return {
    v: 1, kind: 'heart-rate', deviceId: 'sse-1', sizeMs: 10_000, slideMs: 10_000, start: T0 + i * 10_000, end: T0 + (i + 1) * 10_000,
    group: {}, values: { count: 50, bpm_mean: bpm, bpm_min: bpm - 5, bpm_max: bpm + 5 }, revision, offset: events.length + 1,
  };
}
function frame(e: WindowEvent): string {
  return `id: ${e.offset}\nevent: window\ndata: ${JSON.stringify(e)}\n\n`;
}
function push(e: WindowEvent): void {
  events.push(e);
  for (const res of open) res.write(frame(e));
}

const scriptedStream: FastifyPluginAsync = async (app) => {
  app.get('/v1/streams/windows', async (req, reply) => {
    const q = req.query as { lastEventId?: string };
    const from = q.lastEventId ?? (req.headers['last-event-id'] as string | undefined) ?? null;
    resumes.push(from);
    if (down) return reply.code(503).send({ error: 'GW_ERR_SHUTTING_DOWN', message: 'down' });
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    const after = from === null ? 0 : Number(from);
    for (const e of events) if (e.offset > after) res.write(frame(e));
    open.add(res);
    res.on('close', () => open.delete(res));
  });
};

const points = async (): Promise<number> => Number(await page.evaluate(() => document.querySelector('#chart-heart-rate-sse-1')?.dataset.points ?? 0));
const status = (): Promise<string | null> => page.locator('#status').getAttribute('data-state');

beforeAll(async () => {
  buildConsole();
  const config = loadConfig({ env: {}, overrides: { http: { port: 0, host: '127.0.0.1' } } });
  server = createHttpServer({ config: config.http, registry: new Registry(), plugins: [scriptedStream, consoleRoutes()], logger: pino({ level: 'silent' }), notReadyReason: () => null });
  const port = await server.start();
  for (let i = 0; i < 6; i++) push(windowEvent(i));
  browser = await launchChromium();
  page = await (await browser.newContext()).newPage();
  errors = collectPageErrors(page);
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForSelector('html[data-ready="true"]');
}, 60_000);

afterAll(async () => {
  for (const res of open) res.destroy();
  await browser?.close();
  await server?.close();
});

describe('console stream client', () => {
  it('plots what the stream sends, live', async () => {
    await waitForValue(status, (s) => s === 'live', { what: 'the live state' });
    await waitForValue(points, (n) => n === 6, { what: 'the six scripted windows' });
    push(windowEvent(6));
    push(windowEvent(7));
    await waitForValue(points, (n) => n === 8, { what: 'two more windows' });
    expect(resumes).toEqual([null]);
  });

  it('shows the lag the stream reports', async () => {
    for (const res of open) res.write(`event: lag\ndata: ${JSON.stringify({ behindOffsets: 1234, behindMs: 5000 })}\n\n`);
    await page.waitForSelector('#lag:not([hidden])');
    expect(await page.locator('#lag').innerText()).toMatch(/behind the gateway by 1,?234 records \(5 s\)/);
  });

  it('shows reconnecting while the stream is gone, then resumes from its last id without a gap', async () => {
    const mark = resumes.length;
    down = true;
    expectedErrors.push(/status of 503/, /status of 503/, /status of 503/, /status of 503/, /status of 503/, /status of 503/, /status of 503/, /status of 503/);
    // The dropped connection itself: Chromium reports the cut-off response.
    expectedErrors.push(/ERR_INCOMPLETE_CHUNKED_ENCODING/);
    for (const res of open) res.destroy();
    await waitForValue(status, (s) => s === 'reconnecting', { what: 'the reconnecting state' });
    await screenshot(page, 'console-sse-reconnecting');
    // Windows the page missed while away.
    push(windowEvent(8));
    push(windowEvent(9));
    down = false;
    await waitForValue(status, (s) => s === 'live', { what: 'live again', timeoutMs: 15_000 });
    await waitForValue(points, (n) => n === 10, { what: 'the missed windows' });
    // The first request after the drop asked to resume after the last window it had (offset 8).
    const after = resumes.slice(mark);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((r) => r === '8'), JSON.stringify(after)).toBe(true);
  });

  it('a correction replaces its window: no duplicate point', async () => {
    push(windowEvent(9, 1, 150));
    await page.waitForFunction(() => true);
    await waitForValue(
      () => page.evaluate(() => document.querySelector('#chart-heart-rate-sse-1 .u-legend') !== null),
      (v) => v,
      { what: 'the chart' },
    );
    expect(await points()).toBe(10);
  });

  it('a reload redraws from IndexedDB and resumes from the last id', async () => {
    const before = resumes.length;
    await page.waitForFunction(() => true);
    // The history writes in batches; the last id (11: the correction) must be saved before the reload.
    await waitForValue(
      () => page.evaluate(() => new Promise((resolve) => {
        const r = (globalThis as any).indexedDB.open('pulsegate-console'); // eslint-disable-line @typescript-eslint/no-explicit-any
        r.onsuccess = () => {
          const g = r.result.transaction('meta').objectStore('meta').get('windows.lastEventId');
          g.onsuccess = () => { resolve(g.result); r.result.close(); };
        };
      })),
      (id) => id === '11',
      { what: 'the last id in IndexedDB' },
    );
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    await waitForValue(points, (n) => n === 10, { what: 'the history redrawn' });
    await waitForValue(() => resumes.length, (n) => n > before, { what: 'the stream reopened' });
    expect(resumes[before]).toBe('11');
    push(windowEvent(10));
    await waitForValue(points, (n) => n === 11, { what: 'the next window after the reload' });
    await screenshot(page, 'console-sse-resumed');
  });

  it('logged nothing but the refusals it was shown', () => {
    const unexpected = errors.filter((line) => !expectedErrors.some((e) => e.test(line)));
    expect(unexpected, unexpected.join('\n')).toEqual([]);
  });
});
