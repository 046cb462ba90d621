import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import type { FileMessageLog } from '../../../gateway/log/message-log.js';
import { openLog, tempDir } from '../log/log-test-helpers.js';
import { gatewayAlerts, loggedTransitions, rules } from './alert-engine-helpers.js';

const SILENT = rules([{ id: 'quiet', kind: 'silence', severity: 'warning', devices: '*', after: '30s' }]);
const reading = (ts: number, seq: number): Reading => ({ kind: 'heart-rate', deviceId: 'a', seq, ts, values: { bpm: 80 } }) as Reading;

let cleanup: (() => Promise<void>) | null = null;
let open: FileMessageLog | null = null;
afterEach(async () => {
  await open?.close();
  open = null;
  await cleanup?.();
  cleanup = null;
});

describe('a silence FIRING logged after the last checkpoint, then a crash', () => {
  it('should be firing again after the restart and resolve once when the device sends, under the same id', async () => {
    const t = await tempDir('pulsegate-alerts-');
    cleanup = t.cleanup;
    const clock = new ManualClock(1_000_000);
    let log = await openLog(t.dir);
    open = log;
    const before = gatewayAlerts(log, clock, SILENT);
    before.engine.onReadings([reading(1_000_000, 1)], clock.now(), 0, 0);
    // The checkpoint: the device is not silent yet.
    clock.advance(10_000);
    const checkpoint = { offset: log.nextOffset, state: JSON.parse(JSON.stringify(before.engine.snapshot())) as unknown };
    // The silence check fires; the FIRING reaches the log; the gateway is killed before the next checkpoint.
    clock.advance(25_000);
    before.engine.checkSilence(clock.now());
    const fired = await loggedTransitions(log);
    expect(fired.map((f) => f.state)).toEqual(['FIRING']);
    await log.close();

    // Restart a minute later: recovery as gateway/main.ts runs it (no ingest record to replay).
    clock.advance(60_000);
    log = await openLog(t.dir);
    open = log;
    const after = gatewayAlerts(log, clock, SILENT);
    await after.alertLog.prime(checkpoint.offset);
    after.engine.restore(checkpoint.state);
    after.engine.adoptLogged(after.alertLog.unmatched());
    after.engine.afterReplay(clock.now());
    // Told to the world before the crash, so firing now (GET /v1/alerts), and not fired again.
    expect(after.engine.firing().map((a) => a.id)).toEqual([fired[0]!.id]);
    after.engine.checkSilence(clock.now() + 120_000);
    // The device's queued readings arrive: the episode resolves, once, under its id.
    after.engine.onReadings([reading(1_100_000, 2)], clock.now() + 1000, 0, 0);
    after.engine.onReadings([reading(1_101_000, 3)], clock.now() + 2000, 0, 0);
    const logged = await loggedTransitions(log);
    expect(logged.map((l) => [l.state, l.id])).toEqual([
      ['FIRING', fired[0]!.id],
      ['RESOLVED', fired[0]!.id],
    ]);
    expect(after.engine.firing()).toEqual([]);
  });

  it('should take a RESOLVED logged after the checkpoint as resolved: a silence episode the checkpoint holds as firing is not resolved twice', async () => {
    const t = await tempDir('pulsegate-alerts-');
    cleanup = t.cleanup;
    const clock = new ManualClock(1_000_000);
    let log = await openLog(t.dir);
    open = log;
    const before = gatewayAlerts(log, clock, SILENT);
    before.engine.onReadings([reading(1_000_000, 1)], clock.now(), 0, 0);
    clock.advance(35_000);
    before.engine.checkSilence(clock.now());
    const checkpoint = { offset: log.nextOffset, state: JSON.parse(JSON.stringify(before.engine.snapshot())) as unknown };
    // Resolved by a Sparkplug birth (not an ingest record: replay does not see it again), then killed.
    before.engine.onDeviceStatus('heart-rate', 'a', 'online', 'birth', clock.now());
    await log.close();

    clock.advance(60_000);
    log = await openLog(t.dir);
    open = log;
    const after = gatewayAlerts(log, clock, SILENT);
    await after.alertLog.prime(checkpoint.offset);
    after.engine.restore(checkpoint.state);
    after.engine.adoptLogged(after.alertLog.unmatched());
    after.engine.afterReplay(clock.now());
    expect(after.engine.firing()).toEqual([]);
    after.engine.onReadings([reading(1_100_000, 2)], clock.now(), 0, 0);
    const logged = await loggedTransitions(log);
    expect(logged.map((l) => l.state)).toEqual(['FIRING', 'RESOLVED']);
  });
});
