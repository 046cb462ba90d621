import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config/load-config.js';
import { createKindRegistry } from '../../gateway/kinds/registry.js';
import { createEmbeddedSink } from '../../gateway/sinks/embedded-sink.js';
import { startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import type { ChildGateway } from '../helpers/child-gateway.js';

/**
 * sinks.writeRawReadings is chosen when readings are batched, not when batches are stored. Run 1
 * (on) acknowledges 250 readings, 200 of them in store batches the store cannot take yet (its
 * file is locked), kill -9. Run 2 (off) delivers those batches, kill -9 before any checkpoint.
 * Run 3 (on) replays from the same checkpoint and passes over the readings those batches hold:
 * had run 2's store dropped them for its setting, they would be lost.
 */
const PUBLISHES = 250;
const dataDir = mkdtempSync(join(tmpdir(), 'pg-raw-toggle-'));
let gw: ChildGateway | null = null;
afterAll(() => {
  if (gw !== null && gw.child.exitCode === null) gw.child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});
const base = { sinks: { batchMaxPoints: 100, flushIntervalMs: 600_000, healthIntervalMs: 600_000, retryInitialMs: 50, retryMaxMs: 200 }, log: { checkpointIntervalMs: 600_000 } };
const withRaw = (on: boolean) => ({ ...base, sinks: { ...base.sinks, writeRawReadings: on } });

async function pending(http: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
  const m = /^pulsegate_log_outbox_pending_records\{[^}]*\} (\d+)/m.exec(text);
  return m === null ? -1 : Number(m[1]);
}

describe('sinks.writeRawReadings on -> off -> on across kill -9', () => {
  it('should store every reading acknowledged while raw readings were on', async () => {
    const storePath = loadConfig({ env: {}, overrides: { dataDir } }).sinks.embeddedPath;
    gw = await startChildGatewayWithConfig(dataDir, withRaw(true));
    // The store cannot take batches: they wait in the log.
    const lock = new Database(storePath);
    lock.pragma('busy_timeout = 5000');
    lock.exec('BEGIN EXCLUSIVE');
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const baseTs = Date.now() - 60_000;
    await Promise.all(Array.from({ length: PUBLISHES }, (_, i) => client.publishAsync('sensors/heart-rate/t1', JSON.stringify({ seq: i + 1, ts: baseTs + i * 10, bpm: 70 }), { qos: 1 })));
    await client.endAsync();
    gw.child.kill('SIGKILL');
    await gw.exited;
    lock.exec('ROLLBACK');
    lock.close();

    gw = await startChildGatewayWithConfig(dataDir, withRaw(false));
    for (let i = 0; i < 200 && (await pending(gw.ports.http)) !== 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await pending(gw.ports.http)).toBe(0);
    gw.child.kill('SIGKILL');
    await gw.exited;

    gw = await startChildGatewayWithConfig(dataDir, withRaw(true));
    // The chain of run 1's batches still reaches past the readings run 2 delivered.
    expect(gw.output.some((l) => l.includes('were not batched again')), 'run 3 passed over the batched readings').toBe(true);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);

    const sink = createEmbeddedSink({ config: loadConfig({ env: {}, overrides: { dataDir } }).sinks, kinds: createKindRegistry() });
    await sink.start();
    try {
      const stored = await sink.queryReadings({ kind: 'heart-rate', deviceId: 't1', from: 0, to: Date.now() + 3_600_000, limit: 10_000 });
      expect(stored.map((r) => r.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: PUBLISHES }, (_, i) => i + 1));
    } finally {
      await sink.close();
    }
  }, 120_000);
});
