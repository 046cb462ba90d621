import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { LOCK_FILE } from '../../gateway/log/data-dir-lock.js';
import { spawnCli, startChildGateway } from '../helpers/child-gateway.js';
import { eventually, sample, scrape } from '../helpers/metrics.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'pg-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pulsegate CLI', () => {
  it('should print help and exit 0', async () => {
    const { output, exited } = spawnCli(['--help']);
    expect(await exited).toBe(0);
    expect(output.join('\n')).toContain('pulsegate start [--config FILE]');
  });

  it('should print help and exit 0 for --help after a command, without running it', async () => {
    const { output, exited } = spawnCli(['start', '--help']);
    expect(await exited).toBe(0);
    expect(output.join('\n')).toContain('pulsegate start [--config FILE]');
  });

  it('should refuse to start, exit 3, with a store setting the store cannot use', async () => {
    const f = join(dir, 'bad-store.yaml');
    writeFileSync(f, `dataDir: ${JSON.stringify(join(dir, 'bad-store-data'))}\nmqtt:\n  port: 0\nhttp:\n  port: 0\nsinks:\n  influxUrl: "http://a b/pulsegate"\n`);
    const { output, exited } = spawnCli(['start', '--config', f]);
    expect(await exited).toBe(3);
    expect(output.join('\n')).toContain('sinks:');
  });

  it('should list every problem of a bad config file and exit 3', async () => {
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, 'mqtt:\n  port: -1\n  wsport: 9001\nlog:\n  segmentMaxBytes: 10\nsinks:\n  influxUrl: ftp://x\n');
    const { output, exited } = spawnCli(['check-config', f]);
    expect(await exited).toBe(3);
    const text = output.join('\n');
    expect(text).toContain('4 problems');
    for (const p of ['mqtt.port', 'unknown key "wsport"', 'log.segmentMaxBytes', 'sinks.influxUrl']) expect(text).toContain(p);
  });

  it('should refuse to start on a bad PULSEGATE_* variable, naming it', async () => {
    const { output, exited } = spawnCli(['start'], { PULSEGATE_HTTP_PORT: 'eighty' });
    expect(await exited).toBe(3);
    expect(output.join('\n')).toContain('PULSEGATE_HTTP_PORT');
  });

  it('should run, take readings from mosquitto_pub, serve metrics and stop cleanly on SIGTERM', async () => {
    const gw = await startChildGateway(join(dir, 'data'));
    try {
      const ts = Date.now();
      await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(gw.ports.mqtt), '-q', '1', '-t', 'sensors/heart-rate/cli-1', '-m', JSON.stringify({ seq: 1, ts, bpm: 64 })]);
      const text = await eventually(() => scrape(gw.ports.http), (m) => sample(m, 'pulsegate_readings_received_total', { kind: 'heart-rate' }) === 1);
      expect(sample(text, 'pulsegate_readings_rejected_total', { reason: 'decode_error' })).toBe(0);
      const ready = await fetch(`http://127.0.0.1:${gw.ports.http}/readyz`);
      expect(ready.status).toBe(200);
      // A query leaves its SQL process idle for the next one: the shutdown ends it too, and still finishes.
      const query = await fetch(`http://127.0.0.1:${gw.ports.http}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: 'SELECT count(*) AS n FROM readings' }) });
      expect(((await query.json()) as { rows: unknown[] }).rows).toHaveLength(1);
    } finally {
      gw.child.kill('SIGTERM');
    }
    expect(await gw.exited).toBe(0);
    expect(gw.output.join('\n')).toContain('pulsegate stopped');
    expect(existsSync(join(dir, 'data', LOCK_FILE)), 'the data directory lock is released').toBe(false);
  });
});
