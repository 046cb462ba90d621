import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/child-gateway.js';
import { startChildPushProxy } from '../helpers/push-proxy.js';
import { startLocalPushService, type LocalPushService } from '../helpers/push-service.js';
import { startSseSource, type SseSource } from '../helpers/sse-source.js';
import { makeTestPki, type TestPki } from '../helpers/tls-certs.js';
import { waitFor } from '../helpers/wait.js';

const PHONES = ['phone-0', 'phone-1', 'phone-2'];
const EVENTS = 60;

let pki: TestPki;
let source: SseSource;
let push: LocalPushService;
beforeAll(async () => {
  pki = makeTestPki();
  source = await startSseSource();
  push = await startLocalPushService(pki);
});
afterAll(async () => {
  await push?.close();
  await source?.close();
});

describe('pulsegate push-proxy', () => {
  it('should lose and repeat no push when killed with SIGKILL mid-stream (repeats only of pushes logged but not acked)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-push-crash-'));
    const keyFile = join(dir, 'vapid.json');
    const gen = spawnCli(['push-proxy', 'generate-vapid-keys', '--out', keyFile]);
    expect(await gen.exited, gen.output.join('\n')).toBe(0);
    const configFile = join(dir, 'pulsegate.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        dataDir: dir,
        pushProxy: { host: '127.0.0.1', port: 0, gatewayUrl: source.url, vapidKeyFile: keyFile, vapidSubject: 'mailto:ops@example.org', retryInitialMs: 20, retryMaxMs: 200 },
      }),
    );
    const first = await startChildPushProxy(configFile, pki);
    const start = await source.append();
    for (const name of PHONES) {
      const res = await fetch(`${first.url}/v1/handoffs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ subscription: push.subscribe(name).json, lastEventId: String(start) }),
      });
      expect(res.status).toBe(201);
    }
    // Events keep coming while the proxy is killed and while it is down.
    const expected: number[] = [];
    let killed = false;
    for (let i = 0; i < EVENTS; i++) {
      expected.push(await source.append());
      if (!killed && push.delivered('phone-0').length >= 15) {
        first.child.kill('SIGKILL');
        killed = true;
        await first.exited;
      }
      if (!killed) await new Promise((r) => setImmediate(r));
    }
    if (!killed) {
      await waitFor(() => push.delivered('phone-0').length >= 15);
      first.child.kill('SIGKILL');
      await first.exited;
    }
    const deliveredBeforeRestart = PHONES.map((n) => push.delivered(n).length);
    expect(Math.min(...deliveredBeforeRestart)).toBeLessThan(EVENTS);
    // What the proxy had logged as sent but not acked when it died: the only pushes it may repeat.
    const db = new Database(join(dir, 'push-proxy', 'push-proxy.sqlite'), { readonly: true });
    const unacked = db.prepare(`SELECT h.endpoint, p.event_id FROM pushes p JOIN handoffs h ON h.id = p.handoff_id WHERE p.state = 'sent'`).all() as { endpoint: string; event_id: number }[];
    db.close();

    const second = await startChildPushProxy(configFile, pki);
    try {
      await waitFor(() => PHONES.every((n) => new Set(push.delivered(n).map((p) => p['eventId'])).size === EVENTS), { timeoutMs: 20_000, what: 'every event pushed to every phone' });
      for (const name of PHONES) {
        const got = push.delivered(name).map((p) => Number(p['eventId']));
        expect([...new Set(got)], name).toEqual(expected);
        const repeats = got.filter((id, i) => got.indexOf(id) !== i);
        const allowed = unacked.filter((u) => u.endpoint.endsWith(`/${name}`)).map((u) => u.event_id);
        for (const r of repeats) expect(allowed, `${name} repeated ${r}`).toContain(r);
        // In stream order, a repeat only right where the restart resumed.
        expect(got.filter((id, i) => i > 0 && id < got[i - 1]!)).toEqual([]);
      }
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  });
});
