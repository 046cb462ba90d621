import { mkdirSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import type { ChildGateway } from '../helpers/child-gateway.js';
import { fillDisk, mountTmpfs } from '../helpers/disk.js';
import { eventually } from '../helpers/metrics.js';
import { waitForValue } from '../helpers/wait.js';

// A real 16 MiB tmpfs as the data directory: the log and the embedded store both run out of space.
const tmpfs = mountTmpfs(16, 'pg-e2e-diskfull-');
afterAll(() => tmpfs?.unmount());

const SHUTDOWN_TIMEOUT_MS = 4000;

async function readyz(port: number): Promise<{ status: number; body: { status: string; reason?: string } }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
}

function until<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  return waitForValue(fn, ok, { timeoutMs, what });
}

function start(dataDir: string): Promise<ChildGateway> {
  mkdirSync(dataDir, { recursive: true });
  return startChildGatewayWithConfig(dataDir, {
    logLevel: 'info',
    sinks: { flushIntervalMs: 100, retryInitialMs: 50, retryMaxMs: 500 },
    runtime: { shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS },
  });
}

/** SIGTERM, and the exit code, or null if it did not exit within `ms`. */
async function terminate(gw: ChildGateway, ms: number): Promise<{ code: number | null; tookMs: number }> {
  const t0 = Date.now();
  gw.child.kill('SIGTERM');
  const code = await Promise.race([gw.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms))]);
  if (code === 'hung') {
    gw.child.kill('SIGKILL');
    await gw.exited;
    throw new Error(`gateway still running ${ms} ms after SIGTERM:\n${gw.output.slice(-30).join('\n')}`);
  }
  return { code, tookMs: Date.now() - t0 };
}

describe.runIf(tmpfs !== null)('gateway on a full disk', () => {
  it('disk full: acks are withheld, /readyz says why, and after space is freed publishes are acked again and every acked reading is stored', async () => {
    const dataDir = join(tmpfs!.dir, 'recover');
    const gw = await start(dataDir);
    const client: MqttClient = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 100, connectTimeout: 2000 });
    client.on('error', () => undefined);
    const acked = new Set<number>();
    const baseTs = Date.now() - 60_000;
    // Readings published on the full disk are padded (leading spaces) past a page: a smaller
    // group can still fit in the unused tail of the segment's last page, and that write really
    // succeeds (and is rightly acknowledged).
    const publish = (seq: number, pad = 0): Promise<void> =>
      client.publishAsync('sensors/heart-rate/disk-1', ' '.repeat(pad) + JSON.stringify({ seq, ts: baseTs + seq, bpm: 70 }), { qos: 1 }).then(() => void acked.add(seq));
    let filler: string | null = null;
    try {
      await Promise.all(Array.from({ length: 20 }, (_, k) => publish(k + 1)));
      expect(acked.size).toBe(20);

      filler = fillDisk(tmpfs!.dir);
      const late = Array.from({ length: 20 }, (_, k) => publish(100 + k, 8192).catch(() => undefined));
      const notReady = await until(() => readyz(gw.ports.http), (r) => r.status === 503, 15_000, '/readyz to answer 503');
      expect(notReady.body.reason).toMatch(/log write failing.*ENOSPC/);
      // Nothing written on the full disk is acknowledged.
      expect([...acked].filter((s) => s >= 100)).toEqual([]);

      unlinkSync(filler);
      filler = null;
      await Promise.race([
        Promise.all(late),
        until(() => acked.size, (n) => n === 40, 20_000, 'the publishes made on the full disk to be acked once space is back'),
      ]);
      await until(() => acked.size, (n) => n === 40, 20_000, 'all 40 publishes acked');
      await until(() => readyz(gw.ports.http), (r) => r.status === 200, 10_000, '/readyz to answer 200 again');

      // Every acknowledged reading reaches the store.
      const stored = await until(
        async () => {
          const res = await fetch(`http://127.0.0.1:${gw.ports.http}/v1/readings?kind=heart-rate&device=disk-1&from=0&limit=1000`);
          const body = (await res.json()) as { readings?: { seq: number }[] };
          return new Set((body.readings ?? []).map((r) => r.seq));
        },
        (s) => [...acked].every((seq) => s.has(seq)),
        20_000,
        'every acked reading in the store',
      );
      expect(stored.size).toBe(40);
      // One error line for the failure, not one stack per second.
      const flood = gw.output.filter((l) => l.includes('sink batch flush failed')).length;
      expect(flood).toBeLessThanOrEqual(1);
      const logErrors = gw.output.filter((l) => l.includes('"msg":"log write failed')).length;
      expect(logErrors).toBe(1);
      // Every publish in flight fails at once: one ingest line for all of them (the rest counted in it).
      const ingestErrors = gw.output.filter((l) => l.includes('"msg":"ingest append failed')).length;
      expect(ingestErrors).toBeLessThanOrEqual(1);
    } finally {
      if (filler !== null) unlinkSync(filler);
      client.end(true);
    }
    const { code } = await terminate(gw, SHUTDOWN_TIMEOUT_MS + 3000);
    expect(code).toBe(0);
  }, 90_000);

  it('disk full: SIGTERM while the disk is still full exits within runtime.shutdownTimeoutMs', async () => {
    const dataDir = join(tmpfs!.dir, 'sigterm');
    const gw = await start(dataDir);
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 100, connectTimeout: 2000 });
    client.on('error', () => undefined);
    const filler = fillDisk(tmpfs!.dir);
    try {
      for (let seq = 1; seq <= 20; seq++) void client.publishAsync('sensors/heart-rate/disk-2', JSON.stringify({ seq, ts: Date.now(), bpm: 70 }), { qos: 1 }).catch(() => undefined);
      await until(() => readyz(gw.ports.http), (r) => r.status === 503, 15_000, '/readyz to answer 503');
      const { tookMs } = await terminate(gw, SHUTDOWN_TIMEOUT_MS + 3000);
      expect(tookMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS + 3000);
    } finally {
      client.end(true);
      unlinkSync(filler);
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('data directory deleted under a running gateway: SIGTERM exits within runtime.shutdownTimeoutMs', async () => {
    const dataDir = join(tmpfs!.dir, 'deleted');
    const gw = await start(dataDir);
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 100, connectTimeout: 2000 });
    client.on('error', () => undefined);
    try {
      for (let seq = 1; seq <= 10; seq++) await client.publishAsync('sensors/heart-rate/disk-3', JSON.stringify({ seq, ts: Date.now(), bpm: 70 }), { qos: 1 });
      rmSync(dataDir, { recursive: true, force: true });
      // Writes to the unlinked segment would still succeed: the gateway must notice, stop acking
      // and say why, instead of acknowledging readings no restart can find.
      for (let seq = 11; seq <= 20; seq++) void client.publishAsync('sensors/heart-rate/disk-3', JSON.stringify({ seq, ts: Date.now(), bpm: 70 }), { qos: 1 }).catch(() => undefined);
      const ready = await eventually(
        async () => {
          const res = await fetch(`http://127.0.0.1:${gw.ports.http}/readyz`);
          return { status: res.status, body: await res.text() };
        },
        (r) => r.status === 503,
        10_000,
      );
      expect(ready.body).toContain('was removed from');
      const { tookMs } = await terminate(gw, SHUTDOWN_TIMEOUT_MS + 3000);
      expect(tookMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS + 3000);
    } finally {
      client.end(true);
    }
  }, 60_000);
});
