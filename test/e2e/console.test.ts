import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConsole } from '../../scripts/build-console.js';
import { runSimulator } from '../../simulators/index.js';
import { collectPageErrors, launchChromium, screenshot } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor, waitForValue } from '../helpers/wait.js';

// Names of the page's globals, for the functions page.evaluate runs in the browser (the project's
// TypeScript has no DOM library).
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;
declare const indexedDB: any;

/**
 * The console in real headless Chromium, against a real gateway fed by the simulators. These
 * tests need no SSE streams: without them the page polls (see console-streams.test.ts for the
 * parts that need the streams).
 */
let gw: TestGateway;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let errors: string[] = [];
/**
 * Lines Chromium logs for the 400s a test asks for on purpose (a syntax error in the query box):
 * it logs every 4xx answer of a fetch as "Failed to load resource". One allowed per entry.
 */
const expectedErrors: RegExp[] = [];
const abort = new AbortController();
let sims: Promise<unknown>[] = [];
const ATHLETES = ['athlete-1', 'athlete-2', 'athlete-3'];
const BRIDGES = ['bridge-1', 'bridge-2'];
let base = '';

interface Answer {
  rows: unknown[][];
}
async function query(sql: string): Promise<Answer> {
  const res = await fetch(`${base}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql }) });
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return (await res.json()) as Answer;
}
const chartPoints = (p: Page): Promise<Record<string, number>> =>
  p.evaluate(() => Object.fromEntries([...document.querySelectorAll('.chart')].map((c: any) => [c.dataset.device, Number(c.dataset.points)])));

beforeAll(async () => {
  buildConsole();
  gw = await startTestGateway({ sinks: { flushIntervalMs: 200 }, http: { allowAnonymous: true } });
  base = `http://127.0.0.1:${gw.ports.http}`;
  const url = `mqtt://127.0.0.1:${gw.ports.mqtt}`;
  sims = [
    runSimulator({ kind: 'heart-rate', devices: ATHLETES.length, url, qos: 1, duplicates: 0.05, seed: 15, signal: abort.signal }),
    runSimulator({ kind: 'bridge', devices: BRIDGES.length, rate: 4, url, qos: 1, format: 'json', seed: 16, signal: abort.signal }),
  ];
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  errors = collectPageErrors(page);
  await page.goto(`${base}/`);
  await page.waitForSelector('html[data-ready="true"]');
}, 60_000);

afterAll(async () => {
  abort.abort();
  await Promise.allSettled(sims);
  await browser?.close();
  await gw?.dispose();
});

describe('console', () => {
  it('the device table fills with every simulated device, with rates and duplicates', async () => {
    for (const id of [...ATHLETES, ...BRIDGES]) await page.waitForSelector(`#devices-table tr[data-device="${id}"]`, { timeout: 15_000 });
    expect(await page.locator('#devices-table tbody tr[data-device]').count()).toBe(ATHLETES.length + BRIDGES.length);
    await expect.poll(() => page.locator('#devices-table tr[data-device="athlete-1"] td[data-col="rate"]').innerText(), { timeout: 15_000 }).toMatch(/\/s$/);
    // The simulator sends 5 % of its readings twice: the table counts them per device.
    const dup = await waitForValue(
      async () => Number((await page.locator('#devices-table tr[data-kind="heart-rate"] td[data-col="duplicates"]').allInnerTexts()).reduce((n, t) => n + Number(t.replace(/\D/g, '') || 0), 0)),
      (n) => n > 0,
      { what: 'duplicates in the device table', timeoutMs: 20_000 },
    );
    const server = (await (await fetch(`${base}/v1/devices`)).json()) as { devices: Array<{ kind: string; duplicates: number }> };
    expect(dup).toBeLessThanOrEqual(server.devices.filter((d) => d.kind === 'heart-rate').reduce((n, d) => n + d.duplicates, 0));
    expect(await page.locator('#devices-table tr[data-device="bridge-1"] td').nth(1).innerText()).toBe('bridge');
    // The rate needs two scrapes of /metrics; a loaded machine may not have made the second yet.
    await expect.poll(() => page.locator('#h-rate').innerText(), { timeout: 15_000 }).toMatch(/\/s$/);
    await screenshot(page, 'console-devices');
  });

  it('the charts receive points for every athlete', async () => {
    const points = await waitForValue(() => chartPoints(page), (p) => ATHLETES.every((a) => (p[a] ?? 0) >= 2), { what: 'two 10 s windows per athlete on the charts', timeoutMs: 45_000 });
    expect(Object.keys(points)).toEqual(expect.arrayContaining(ATHLETES));
    expect(await page.locator('#chart-heart-rate-athlete-1 canvas').count()).toBeGreaterThan(0);
    await screenshot(page, 'console-charts');
  });

  it('a query typed in the box shows the right rows; a syntax error shows where', async () => {
    const t0 = Date.now() - 2000;
    const sql = `SELECT device_id, kind, count(*) AS n FROM readings WHERE ts < ${t0} GROUP BY device_id, kind ORDER BY device_id`;
    // The store has every reading before t0 once two answers agree and it has all five devices.
    let previous = '';
    const expected = await waitForValue(
      async () => {
        const a = await query(sql);
        const same = JSON.stringify(a.rows) === previous;
        previous = JSON.stringify(a.rows);
        return same ? a.rows : null;
      },
      (r) => r !== null && r.length === ATHLETES.length + BRIDGES.length,
      { what: 'a settled answer', timeoutMs: 15_000, intervalMs: 500 },
    );
    await page.locator('#sql').fill(sql);
    await page.locator('#sql').press('Control+Enter');
    await page.waitForFunction((n) => document.querySelectorAll('#query-result tbody tr').length === n, expected!.length, { timeout: 15_000 });
    const shown = await page.evaluate(() => [...document.querySelectorAll('#query-result tbody tr')].map((tr: any) => [...tr.querySelectorAll('td')].map((td: any) => td.textContent)));
    expect(shown).toEqual(expected!.map((row) => row.map((v) => String(v))));
    expect(await page.locator('#query-result thead th').allInnerTexts()).toEqual(['device_id', 'kind', 'n']);
    expect(await page.locator('#query-info').innerText()).toMatch(/5 rows/);

    expectedErrors.push(/Failed to load resource: the server responded with a status of 400/);
    await page.locator('#sql').fill('SELECT device_id\nFROM readings WHERE ts >> > 1');
    await page.locator('#sql').press('Control+Enter');
    await page.waitForSelector('#query-error:not([hidden])');
    const message = await page.locator('#query-error').innerText();
    expect(message).toMatch(/line 2, column \d+/);
    expect(message).toContain('^');
    await screenshot(page, 'console-query');
  });

  it('is usable with the keyboard and at phone width', async () => {
    await page.locator('body').focus();
    let reached = false;
    for (let i = 0; i < 80 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.id === 'run');
    }
    expect(reached, 'Tab reaches the Run button').toBe(true);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction(() => document.documentElement.scrollWidth <= window.innerWidth + 1, null, { timeout: 5000 });
    await screenshot(page, 'console-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('a reload redraws the charts from IndexedDB, before and without the gateway sending a window', async () => {
    const before = await chartPoints(page);
    // Give the history its flush (it batches writes for 300 ms), then make the gateway's windows
    // unavailable to the reloaded page: what it plots can only come from IndexedDB.
    await page.waitForFunction(() => true, null, { timeout: 1000 });
    await waitFor(async () => (await page.evaluate(() => new Promise<number>((resolve) => {
      const open = indexedDB.open('pulsegate-console');
      open.onsuccess = () => {
        const count = open.result.transaction('windows').objectStore('windows').count();
        count.onsuccess = () => { resolve(count.result); open.result.close(); };
      };
    }))) >= Object.values(before).reduce((n, p) => n + p, 0), { what: 'the charted windows in IndexedDB' });
    await page.route('**/features.json', (route) => route.fulfill({ json: { devices: true, streams: { windows: false, alerts: false }, alerts: false, alertsHistory: false, sql: 'sql' } }));
    await page.route(/\/v1\/windows\?/, (route) => route.fulfill({ json: { kind: 'x', from: 0, to: 0, count: 0, windows: [] } }));
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    const after = await waitForValue(() => chartPoints(page), (p) => ATHLETES.every((a) => (p[a] ?? 0) >= (before[a] ?? 0)), { what: 'the charts as they were', timeoutMs: 5000 });
    for (const a of ATHLETES) expect(after[a], a).toBeGreaterThanOrEqual(before[a]!);
    await page.unroute('**/features.json');
    await page.unroute(/\/v1\/windows\?/);
    await screenshot(page, 'console-reloaded');
  });

  it('logged no error and threw nothing', () => {
    const unexpected = [...errors];
    for (const e of expectedErrors) {
      const i = unexpected.findIndex((line) => e.test(line));
      if (i >= 0) unexpected.splice(i, 1);
    }
    expect(unexpected, unexpected.join('\n')).toEqual([]);
  });
});
