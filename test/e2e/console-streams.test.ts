import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConsole } from '../../scripts/build-console.js';
import { runSimulator } from '../../simulators/index.js';
import { collectPageErrors, launchChromium, screenshot } from '../helpers/browser.js';
import type { ChildGateway } from '../helpers/child-gateway.js';
import { startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import { waitForValue } from '../helpers/wait.js';

declare const document: any; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * The console against a real gateway (a child process, killed with SIGKILL and started again)
 * with its SSE hub (GET /v1/streams/windows, /v1/streams/alerts) and alerts (GET /v1/alerts).
 * The built-in alert rule heart-rate-spike (10 s bpm_max above 200) gives the firing alert.
 */
const ALERT_CONFIG: Record<string, unknown> = { alerts: { defaultRules: true } };

const dataDir = mkdtempSync(join(tmpdir(), 'pg-console-streams-'));
let gw: ChildGateway;
let browser: Browser;
let page: Page;
let errors: string[] = [];
let streams = false;
let abort = new AbortController();
let sims: Promise<unknown>[] = [];
const requests: string[] = [];
let base = '';

function startSims(mqttPort: number): void {
  abort = new AbortController();
  const url = `mqtt://127.0.0.1:${mqttPort}`;
  sims = [
    runSimulator({ kind: 'heart-rate', devices: 2, url, qos: 1, seed: 21, signal: abort.signal }),
    runSimulator({ kind: 'bridge', devices: 1, rate: 4, url, qos: 1, format: 'json', seed: 22, signal: abort.signal }),
  ];
}
async function startGw(ports?: { mqtt: number; http: number }): Promise<ChildGateway> {
  return startChildGatewayWithConfig(dataDir, {
    ...ALERT_CONFIG,
    sinks: { flushIntervalMs: 200 },
    // The page reads the streams anonymously, as in the demo.
    ...(ports ? { mqtt: { port: ports.mqtt }, http: { port: ports.http, allowAnonymous: true } } : { http: { allowAnonymous: true } }),
  });
}
/** The 10 s window starts of a device the page keeps (IndexedDB). */
const storedStarts = (device: string): Promise<number[]> =>
  page.evaluate(
    (d: string) =>
      new Promise<number[]>((resolve) => {
        const r = (globalThis as any).indexedDB.open('pulsegate-console'); // eslint-disable-line @typescript-eslint/no-explicit-any
        r.onsuccess = () => {
          const all = r.result.transaction('windows').objectStore('windows').getAll();
          all.onsuccess = () => {
            resolve((all.result as Array<{ deviceId: string; sizeMs: number; start: number }>).filter((w) => w.deviceId === d && w.sizeMs === 10_000).map((w) => w.start).sort((a, b) => a - b));
            r.result.close();
          };
        };
      }),
    device,
  );
const points = async (device: string): Promise<number> => Number(await page.evaluate((d: string) => document.querySelector(`.chart[data-device="${d}"]`)?.dataset.points ?? 0, device));

beforeAll(async () => {
  buildConsole();
  gw = await startGw();
  base = `http://127.0.0.1:${gw.ports.http}`;
  const features = (await (await fetch(`${base}/features.json`)).json()) as { streams: { windows: boolean; alerts: boolean }; alerts: boolean };
  streams = features.streams.windows && features.streams.alerts && features.alerts;
  if (!streams) return;
  startSims(gw.ports.mqtt);
  browser = await launchChromium();
  page = await (await browser.newContext()).newPage();
  errors = collectPageErrors(page);
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`${base}/`);
  await page.waitForSelector('html[data-ready="true"]');
}, 60_000);

afterAll(async () => {
  abort.abort();
  await Promise.allSettled(sims);
  await browser?.close();
  gw?.child.kill('SIGTERM');
  await gw?.exited;
  rmSync(dataDir, { recursive: true, force: true });
});

describe('console with the live streams', () => {
  it('the gateway has the streams and the alerts the page uses', () => {
    expect(streams).toBe(true);
  });

  it('charts receive points from the windows stream', async (ctx) => {
    if (!streams) return ctx.skip();
    await waitForValue(() => page.locator('#status').getAttribute('data-state'), (s) => s === 'live', { what: 'the live state' });
    await waitForValue(() => points('athlete-1'), (n) => n >= 2, { what: 'windows of athlete-1 from the stream', timeoutMs: 45_000 });
    expect(requests.some((u) => u.includes('/v1/streams/windows'))).toBe(true);
    expect(requests.some((u) => /\/v1\/windows\?/.test(u)), 'no polling while the stream is there').toBe(false);
  });

  it('a simulated anomaly shows as a firing alert within seconds of its window closing', async (ctx) => {
    if (!streams) return ctx.skip();
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const t0 = Math.floor(Date.now() / 10_000) * 10_000 - 20_000;
    try {
      // 12 s of 230 bpm at 5 Hz: the window [t0, t0 + 10 s) closes with the readings after it.
      for (let i = 0; i < 60; i++) await client.publishAsync('sensors/heart-rate/anomaly-1', JSON.stringify({ seq: i + 1, ts: t0 + i * 200, bpm: 230 }), { qos: 1 });
    } finally {
      await client.endAsync();
    }
    const closedAt = Date.now();
    await page.waitForSelector('#firing-table tr[data-device="anomaly-1"]', { timeout: 15_000 });
    expect(Date.now() - closedAt).toBeLessThan(15_000);
    await waitForValue(() => page.locator('#devices-table tr[data-device="anomaly-1"] td[data-col="alerts"]').innerText(), (t) => /firing/.test(t), { what: 'the alert in the device table' });
    await screenshot(page, 'console-alert-firing');
  });

  it('a reload keeps the plotted history and resumes the streams from their last ids, without duplicate points', async (ctx) => {
    if (!streams) return ctx.skip();
    const before = await points('athlete-1');
    requests.length = 0;
    await page.reload();
    await page.waitForSelector('html[data-ready="true"]');
    expect(await points('athlete-1')).toBeGreaterThanOrEqual(before);
    await waitForValue(() => requests.find((u) => u.includes('/v1/streams/windows')) ?? '', (u) => /lastEventId=\d+/.test(u), { what: 'the windows stream resumed from an id' });
    const starts = await storedStarts('athlete-1');
    expect(new Set(starts).size).toBe(starts.length);
    expect(await points('athlete-1')).toBe(starts.length);
  });

  it('killing and restarting the gateway shows reconnecting, then no gap', async (ctx) => {
    if (!streams) return ctx.skip();
    const ports = { mqtt: gw.ports.mqtt, http: gw.ports.http };
    gw.child.kill('SIGKILL');
    await gw.exited;
    await waitForValue(() => page.locator('#status').getAttribute('data-state'), (s) => s === 'reconnecting', { what: 'the reconnecting state' });
    await screenshot(page, 'console-reconnecting');
    gw = await startGw(ports);
    await waitForValue(() => page.locator('#status').getAttribute('data-state'), (s) => s === 'live', { what: 'live again', timeoutMs: 30_000 });
    const resumedAt = Date.now();
    // Two more windows after the restart, then: every 10 s window of athlete-1 the store has in the plotted range is plotted once.
    await waitForValue(async () => (await storedStarts('athlete-1')).filter((s) => s > resumedAt).length, (n) => n >= 1, { what: 'windows after the restart', timeoutMs: 45_000 });
    const starts = await storedStarts('athlete-1');
    // A window reaches the page over the stream (from the log) before the store has written it.
    const last = starts[starts.length - 1]!;
    const server = await waitForValue(
      async () => (await (await fetch(`${base}/v1/windows?kind=heart-rate&device=athlete-1&size=10s&from=${starts[0]}&to=${last + 1}&limit=10000`)).json()) as { windows: Array<{ start: number }> },
      (b) => b.windows.some((w) => w.start === last),
      { what: 'the store to hold the last plotted window', timeoutMs: 15_000 },
    );
    expect(starts).toEqual([...new Set(server.windows.map((w) => w.start))].sort((a, b) => a - b));
  });

  it('logged no error but the refused connections while the gateway was down', (ctx) => {
    if (!streams) return ctx.skip();
    const unexpected = errors.filter((l) => !/ERR_CONNECTION_REFUSED|ERR_INCOMPLETE_CHUNKED_ENCODING|ERR_EMPTY_RESPONSE|status of 503/.test(l));
    expect(unexpected, unexpected.join('\n')).toEqual([]);
  });
});
