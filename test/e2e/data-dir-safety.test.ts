import { mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import type { ChildGateway } from '../helpers/child-gateway.js';
import { waitFor } from '../helpers/wait.js';

const dirs: string[] = [];
const children: ChildGateway[] = [];
afterAll(() => {
  for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'pg-dirsafety-'));
  dirs.push(d);
  return d;
}
async function start(dataDir: string, config: Record<string, unknown> = {}): Promise<ChildGateway> {
  const gw = await startChildGatewayWithConfig(dataDir, config);
  children.push(gw);
  return gw;
}
/** Starts a gateway that is expected to refuse; returns its output. */
async function refusedStart(dataDir: string, config: Record<string, unknown> = {}): Promise<string> {
  try {
    const gw = await start(dataDir, config);
    gw.child.kill('SIGKILL');
    throw new Error('the gateway started');
  } catch (err) {
    return (err as Error).message;
  }
}
async function publishAcked(port: number, device: string, n: number): Promise<void> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0 });
  const ts = Date.now() - 60_000;
  for (let seq = 1; seq <= n; seq++) await client.publishAsync(`sensors/heart-rate/${device}`, JSON.stringify({ seq, ts: ts + seq, bpm: 70 }), { qos: 1 });
  await client.endAsync();
}
const until = (cond: () => boolean, timeoutMs: number, what: string): Promise<void> => waitFor(cond, { timeoutMs, what, intervalMs: 25 });
const checkpointFiles = (logDir: string): string[] => readdirSync(logDir).filter((f) => /^checkpoint-\d{20}\.ckpt$/.test(f)).sort();

describe('one data directory, one gateway', () => {
  it('two gateways on one data dir: the second is refused with GW_ERR_DATA_DIR_LOCKED naming the first, and a lock left by kill -9 is taken over', async () => {
    const dataDir = freshDir();
    const first = await start(dataDir);
    const output = await refusedStart(dataDir);
    expect(output).toMatch(/exited with 1/);
    expect(output).toContain('GW_ERR_DATA_DIR_LOCKED');
    expect(output).toContain(`PID ${first.child.pid}`);
    // The first one is unharmed: it still acks.
    await publishAcked(first.ports.mqtt, 'lock-1', 5);

    first.child.kill('SIGKILL');
    await first.exited;
    const again = await start(dataDir);
    expect(again.output.some((l) => l.includes('taking over a stale lock') && l.includes(`"oldPid":${first.child.pid}`))).toBe(true);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
    // A clean stop removes the lock: the next start takes it without a warning.
    expect(readdirSync(dataDir)).not.toContain('pulsegate.lock');
  }, 60_000);

  it('segments deleted by hand while checkpoints remain: the start is refused with GW_ERR_CHECKPOINT_AHEAD naming the fix', async () => {
    const dataDir = freshDir();
    const logDir = join(dataDir, 'log');
    const gw = await start(dataDir, { log: { checkpointIntervalMs: 100 } });
    await publishAcked(gw.ports.mqtt, 'ckpt-1', 20);
    // A checkpoint that covers the 20 readings.
    await until(
      () => {
        const files = checkpointFiles(logDir);
        if (files.length === 0) return false;
        const text = readFileSync(join(logDir, files[files.length - 1]!), 'utf8');
        return (JSON.parse(text.slice(0, text.lastIndexOf('\n', text.length - 2))) as { offset: number }).offset >= 20;
      },
      10_000,
      'a checkpoint past the readings',
    );
    gw.child.kill('SIGKILL');
    await gw.exited;
    for (const f of readdirSync(logDir)) if (f.endsWith('.seg')) unlinkSync(join(logDir, f));

    const output = await refusedStart(dataDir, { log: { checkpointIntervalMs: 100 } });
    expect(output).toMatch(/exited with 1/);
    expect(output).toContain('GW_ERR_CHECKPOINT_AHEAD');
    expect(output).toContain(join(logDir, 'checkpoint-*.ckpt'));

    // The fix the message names works: without the checkpoints the gateway starts from the log.
    for (const f of readdirSync(logDir)) if (f.endsWith('.ckpt')) unlinkSync(join(logDir, f));
    const fixed = await start(dataDir);
    fixed.child.kill('SIGTERM');
    expect(await fixed.exited).toBe(0);
  }, 60_000);

  it('a damaged newest checkpoint is warned about, naming the file and the older checkpoint used instead', async () => {
    const dataDir = freshDir();
    const logDir = join(dataDir, 'log');
    const gw = await start(dataDir, { log: { checkpointIntervalMs: 100 } });
    await publishAcked(gw.ports.mqtt, 'ckpt-2', 5);
    await until(() => checkpointFiles(logDir).length >= 2, 10_000, 'two checkpoints');
    gw.child.kill('SIGKILL');
    await gw.exited;
    const files = checkpointFiles(logDir);
    const newest = files[files.length - 1]!;
    writeFileSync(join(logDir, newest), 'not a checkpoint\n');

    const again = await start(dataDir);
    const warning = again.output.find((l) => l.includes('damaged checkpoint file(s)'));
    expect(warning).toBeDefined();
    expect(warning).toContain(newest);
    expect(warning).toMatch(/"level":40/);
    expect(warning).toMatch(/using the older checkpoint at offset \d+ instead/);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  }, 60_000);
});
