import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventSource } from 'eventsource';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { createMessageLog } from '../../gateway/log/message-log.js';
import { RECORD_TYPES } from '../../gateway/log/types.js';
import { encodeAlertTransition } from '../../gateway/wire/alert.js';
import { startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import type { ChildGateway } from '../helpers/child-gateway.js';
import { readLogRecords } from '../helpers/log-records.js';
import { mulberry32 } from '../helpers/random.js';
import { waitFor } from '../helpers/wait.js';
import { randomAlert } from '../integration/delivery/hub-harness.js';

/**
 * The promise of the SSE hub: EventSource clients that lose the gateway to kill -9 in the middle
 * of a stream reconnect with their Last-Event-ID and end up with every alert of the log after
 * their starting id, exactly once, in offset order.
 *
 * Alerts come from two sides: appended to the log while the gateway is down (between kills, the
 * way a backlog builds up), and, once the alert engine is wired into the gateway, produced live
 * from the readings of the storm below (high heart rates on 20 devices). The check reads every
 * alert record of the log at the end, whoever appended it, so it covers both without change.
 */
const KILLS = 3;
const dataDir = mkdtempSync(join(tmpdir(), 'pg-sse-e2e-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Appends alerts to the log of a stopped gateway (the log recovers its torn tail first); returns their offsets. */
async function appendOffline(n: number, rand: () => number, base: number): Promise<number[]> {
  const log = await createMessageLog({ dir: join(dataDir, 'log') });
  await log.start();
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      out.push(log.append(RECORD_TYPES.alert, encodeAlertTransition(randomAlert(rand, base + i))));
    }
    await log.whenDurable(out[out.length - 1]!);
  } finally {
    await log.close();
  }
  return out;
}

/** High heart rates from 20 devices over MQTT QoS 1 until stopped: the storm the alert engine turns into alerts. */
function storm(port: number): { stop(): Promise<void> } {
  let running = true;
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 2000 });
  client.on('error', () => undefined);
  const loop = (async () => {
    await new Promise<void>((r) => {
      client.once('connect', () => r());
      client.once('close', () => r());
    });
    let seq = 0;
    while (running && client.connected) {
      seq++;
      const device = `storm-${seq % 20}`;
      await client.publishAsync(`sensors/heart-rate/${device}`, JSON.stringify({ seq: Math.ceil(seq / 20), ts: Date.now(), bpm: 190 + (seq % 20) }), { qos: 1 }).catch(() => undefined);
    }
  })();
  return {
    async stop() {
      running = false;
      await Promise.race([loop, new Promise((r) => setTimeout(r, 2000))]);
      client.end(true);
    },
  };
}

describe('SSE resume across kill -9', () => {
  it('EventSource clients reconnect with their Last-Event-ID after kill -9 during an alert storm: no gap, no duplicate', async () => {
    const rand = mulberry32(0x5e5);
    const httpPort = await freePort();
    const config = { http: { port: httpPort, allowAnonymous: true }, delivery: { retryMs: 100, heartbeatMs: 500 } };
    // A backlog, so that the clients are still replaying when the first kill comes.
    const first = await appendOffline(20_000, rand, 0);
    let gw: ChildGateway = await startChildGatewayWithConfig(dataDir, config);
    const starts = [first[10]!, first[5000]!, first[15_000]!, first[19_999]!];
    const clients = starts.map((start) => {
      const seen: number[] = [];
      const es = new EventSource(`http://127.0.0.1:${httpPort}/v1/streams/alerts?lastEventId=${start}`);
      es.addEventListener('alert', (e) => seen.push(Number(e.lastEventId)));
      // For the failure message: how a client that stopped receiving last failed.
      const client = { start, es, seen, lastError: '' };
      es.addEventListener('error', (e) => {
        const err = e as { code?: number; message?: string };
        client.lastError = `${err.code ?? ''} ${err.message ?? ''} state ${es.readyState}`.trim();
      });
      return client;
    });
    let base = 20_000;
    const known = [...first];
    try {
      for (let k = 0; k < KILLS; k++) {
        const load = storm(gw.ports.mqtt);
        // Mid-stream: every client has received something since the last kill, or has all that was appended offline.
        const counts = clients.map((c) => c.seen.length);
        await waitFor(() => clients.every((c, i) => c.seen.length > counts[i]! || (c.seen.at(-1) ?? c.start) === known.at(-1)), { what: 'every client to receive', timeoutMs: 20_000 }).catch((err: unknown) => {
          throw new Error(`${(err as Error).message}: seen ${clients.map((c) => `${c.start}:${c.seen.length}:${c.seen.at(-1)}`).join(' ')}, last known ${known.at(-1)}`);
        });
        const behind = clients.filter((c) => (c.seen.at(-1) ?? c.start) !== known.at(-1)).length;
        process.stderr.write(`kill ${k + 1}: ${behind} of ${clients.length} clients still replaying\n`);
        gw.child.kill('SIGKILL');
        await gw.exited;
        await load.stop();
        known.push(...(await appendOffline(300 + Math.floor(rand() * 300), rand, base)));
        base += 1000;
        gw = await startChildGatewayWithConfig(dataDir, config);
        if (gw.ports.http !== httpPort) throw new Error(`the gateway came back on port ${gw.ports.http}, not ${httpPort}`);
      }
      gw.child.kill('SIGTERM');
      await gw.exited;
      const alerts = (await readLogRecords(join(dataDir, 'log'))).filter((r) => r.type === RECORD_TYPES.alert).map((r) => r.offset);
      gw = await startChildGatewayWithConfig(dataDir, config);
      const last = alerts[alerts.length - 1]!;
      // The restarted gateway may raise more alerts (its engine runs on): each client must have
      // reached the last alert of the log as read, and have every one up to it exactly once, in order.
      await waitFor(() => clients.every((c) => (c.seen.at(-1) ?? -1) >= last), {
        what: 'every client at the last alert of the log',
        timeoutMs: 60_000,
      }).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}: ${clients.map((c) => `${c.start}:${c.seen.length}:${c.seen.at(-1)} (${c.lastError})`).join(' ')}, last ${last}`);
      });
      for (const c of clients) expect(c.seen.filter((o) => o <= last)).toEqual(alerts.filter((o) => o > c.start));
    } finally {
      for (const c of clients) c.es.close();
      gw.child.kill('SIGTERM');
      await gw.exited;
    }
  }, 120_000);
});
