import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildGateway } from '../helpers/child-gateway.js';
import { rssBytes, startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import { sample, scrape } from '../helpers/metrics.js';

/**
 * The gateway runs as a real CLI process, so its RSS (from /proc) is the gateway's alone and not
 * the test runner's. Before the packet guard, aedes buffered every declared packet until it was
 * whole: four sockets sending 200 MiB CONNECTs took the gateway from 110 MB to 930 MB.
 */
const SOCKETS = 4;
const BODY_SENT = 32 * 1024 * 1024; // per socket: what an unguarded broker would buffer
const RSS_GROWTH_LIMIT = 40 * 1024 * 1024;

const dataDir = mkdtempSync(join(tmpdir(), 'pg-bounds-'));
let gw: ChildGateway;
beforeAll(async () => {
  gw = await startChildGatewayWithConfig(dataDir, { mqtt: { maxPacketBytes: 1_048_576, maxConnectBytes: 16_384, deadLetterPayloadBytes: 1_048_576 } });
});
afterAll(async () => {
  if (gw !== undefined && gw.child.exitCode === null) {
    gw.child.kill('SIGKILL');
    await gw.exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

const metric = async (name: string, labels: Record<string, string> = {}) => sample(await scrape(gw.ports.http), name, labels);

/** Runs `work` while sampling the child's RSS every 20 ms; returns the largest sample. */
async function peakRssDuring(work: () => Promise<void>): Promise<number> {
  let peak = rssBytes(gw.child.pid!) ?? 0;
  const timer = setInterval(() => (peak = Math.max(peak, rssBytes(gw.child.pid!) ?? 0)), 20);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, rssBytes(gw.child.pid!) ?? 0);
}

describe('gateway memory under oversize MQTT packets (child process)', () => {
  it('sockets sending CONNECTs that declare 200 MiB are closed after one read: counted, and the gateway RSS does not grow', async () => {
    const before = await metric('pulsegate_mqtt_connections_refused_total', { reason: 'connect_too_large' });
    const baseline = rssBytes(gw.child.pid!)!;
    const startedAt = Date.now();
    const peak = await peakRssDuring(async () => {
      await Promise.all(
        Array.from({ length: SOCKETS }, async () => {
          const socket = netConnect({ port: gw.ports.mqtt, host: '127.0.0.1' });
          socket.on('error', () => {}); // the gateway resets the connection: EPIPE/ECONNRESET expected
          await new Promise<void>((resolve) => socket.once('connect', resolve));
          const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
          // 0x10 CONNECT, remaining length 209,715,200 [MQTT-2.2.3], then the start of its body.
          socket.write(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x64]));
          socket.write(Buffer.alloc(BODY_SENT, 0x61));
          await closed;
        }),
      );
    });
    expect(peak - baseline, `RSS ${baseline} -> peak ${peak}`).toBeLessThan(RSS_GROWTH_LIMIT);
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    expect(await metric('pulsegate_mqtt_connections_refused_total', { reason: 'connect_too_large' })).toBe(before + SOCKETS);
  });

  it('logged-in clients sending 16 MiB PUBLISHes over maxPacketBytes 1 MiB are closed: counted, nothing logged, RSS bounded', async () => {
    const before = {
      refused: await metric('pulsegate_mqtt_connections_refused_total', { reason: 'packet_too_large' }),
      appended: await metric('pulsegate_log_appended_bytes_total'),
      logSize: await metric('pulsegate_log_size_bytes'),
    };
    const baseline = rssBytes(gw.child.pid!)!;
    const peak = await peakRssDuring(async () => {
      await Promise.all(
        Array.from({ length: SOCKETS }, async (_, i) => {
          const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0, keepalive: 0 });
          client.on('error', () => {});
          const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
          client.publish(`sensors/heart-rate/huge-${i}`, Buffer.alloc(16 * 1024 * 1024, 0x41), { qos: 0 });
          await closed;
          client.end(true);
        }),
      );
    });
    expect(await metric('pulsegate_mqtt_connections_refused_total', { reason: 'packet_too_large' })).toBe(before.refused + SOCKETS);
    // The log also holds the gateway's own records (checkpoints: a few hundred bytes may land
    // meanwhile); a dead letter of one of these publishes would keep a 1 MiB payload prefix here.
    expect(await metric('pulsegate_log_appended_bytes_total')).toBeLessThan(before.appended + 64 * 1024);
    expect(await metric('pulsegate_log_size_bytes')).toBeLessThan(before.logSize + 64 * 1024);
    expect(await metric('pulsegate_readings_rejected_total', { reason: 'too_large' })).toBe(0);
    expect(peak - baseline, `RSS ${baseline} -> peak ${peak}`).toBeLessThan(RSS_GROWTH_LIMIT);
  });
});
