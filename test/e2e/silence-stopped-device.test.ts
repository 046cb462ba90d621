import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import type { AlertEvent } from '../../gateway/wire/alert.js';
import { REPO_ROOT } from '../helpers/child-gateway.js';
import { startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The default dead-man rule with a real device that stops: a heart-rate simulator process is
 * killed (-9); `device-silent` (after 30 s, checked every 5 s) fires within after + one period of
 * its last reading, and resolves on the device's next reading.
 */
const AFTER_MS = 30_000;
const PERIOD_MS = 5_000;
/** Process start-up, scheduling and delivery on a loaded machine. */
const SLACK_MS = 3_000;
const dataDir = mkdtempSync(join(tmpdir(), 'pg-silence-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('silence of a stopped device', () => {
  it('should fire device-silent within after + the schedule period of a killed simulator, and resolve when the device sends again', async () => {
    const gw = await startChildGatewayWithConfig(dataDir, {});
    const arrivals: { at: number; event: AlertEvent }[] = [];
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    try {
      sub.on('message', (_t, payload) => {
        if (payload.length > 0) arrivals.push({ at: Date.now(), event: JSON.parse(payload.toString('utf8')) as AlertEvent });
      });
      await sub.subscribeAsync('alerts/device-silent/heart-rate/quiet-1', { qos: 1 });

      const sim = spawn(process.execPath, ['--import', 'tsx', 'simulators/cli.ts', 'heart-rate', '--devices', '1', '--prefix', 'quiet-', '--url', `mqtt://127.0.0.1:${gw.ports.mqtt}`, '--qos', '1', '--anomaly-prob', '0', '--seed', '7', '--quiet'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
      sim.stderr.resume();
      const simExited = new Promise((resolve) => sim.once('exit', resolve));
      // Sending: the gateway has its readings (its silence clock runs from the last of them).
      await waitFor(async () => {
        const text = await (await fetch(`http://127.0.0.1:${gw.ports.http}/metrics`)).text();
        return /pulsegate_readings_received_total\{kind="heart-rate"\} ([1-9][0-9]+)/.test(text);
      }, { timeoutMs: 20_000, what: 'readings of the simulator' });
      sim.kill('SIGKILL');
      await simExited;
      const killedAt = Date.now();

      await waitFor(() => arrivals.some((a) => a.event.state === 'FIRING'), { timeoutMs: AFTER_MS + PERIOD_MS + 15_000, what: 'device-silent FIRING' });
      const firing = arrivals.find((a) => a.event.state === 'FIRING')!;
      expect(firing.event).toMatchObject({ rule: 'device-silent', ruleKind: 'silence', kind: 'heart-rate', deviceId: 'quiet-1' });
      // The episode starts at the last reading's arrival, before the kill; it fires after `after`,
      // at most one schedule period (and the slack) later.
      expect(firing.event.episodeStart).toBeLessThanOrEqual(killedAt);
      expect(firing.event.firedAt - firing.event.episodeStart).toBeGreaterThanOrEqual(AFTER_MS);
      expect(firing.event.firedAt - firing.event.episodeStart).toBeLessThanOrEqual(AFTER_MS + PERIOD_MS + SLACK_MS);
      expect(firing.at - killedAt).toBeLessThanOrEqual(AFTER_MS + PERIOD_MS + SLACK_MS);
      expect(arrivals.filter((a) => a.event.state === 'RESOLVED')).toEqual([]);

      // The device is back: its next reading resolves the episode (no wait for the schedule).
      const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
      const backAt = Date.now();
      await device.publishAsync('sensors/heart-rate/quiet-1', JSON.stringify({ seq: 1_000_000, ts: backAt, bpm: 70 }), { qos: 1 });
      device.end(true);
      await waitFor(() => arrivals.some((a) => a.event.state === 'RESOLVED'), { timeoutMs: PERIOD_MS + SLACK_MS, what: 'device-silent RESOLVED' });
      const resolved = arrivals.find((a) => a.event.state === 'RESOLVED')!;
      expect(resolved.event.id).toBe(firing.event.id);
      expect(resolved.event.resolvedAt).toBeGreaterThanOrEqual(backAt);
    } finally {
      sub.end(true);
      gw.child.kill('SIGTERM');
      await gw.exited;
    }
  }, 120_000);
});
