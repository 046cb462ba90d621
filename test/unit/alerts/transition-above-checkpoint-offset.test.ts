import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { restoreStages, snapshotStages, type StagesState } from '../../../gateway/checkpoint/stateful-stage.js';
import { ManualClock } from '../../../gateway/clock.js';
import { createCheckpointStore } from '../../../gateway/log/checkpoint-store.js';
import type { FileMessageLog } from '../../../gateway/log/message-log.js';
import { senderLogsPrimeFrom } from '../../../gateway/log/sender-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { createCheckpointer } from '../../../gateway/pipeline/checkpointer.js';
import { openLog, tempDir } from '../log/log-test-helpers.js';
import { gatewayAlerts, hrWindow, loggedTransitions, rules } from './alert-engine-helpers.js';

const SPIKE = rules([{ id: 'spike', kind: 'threshold', severity: 'critical', sensorKind: 'heart-rate', devices: '*', window: '10s', aggregate: 'bpm_max', above: 200, clear: 190 }]);
const quiet = pino({ level: 'silent' });

let cleanup: (() => Promise<void>) | null = null;
let open: FileMessageLog | null = null;
afterEach(async () => {
  await open?.close();
  open = null;
  await cleanup?.();
  cleanup = null;
});

/**
 * A transition is appended after every ingest record appended so far, so it lands above the
 * records still waiting for their fdatasync. A checkpoint captured right then covers the
 * processed records only (its offset is below the transition's) while its state holds the
 * transition. After a crash, that transition is no replay's to match: taken as told-but-not-
 * replayed, it would fire again an episode the replay has resolved, and resolve it twice.
 */
describe('a FIRING logged above the checkpoint offset, before the capture, then resolved and a crash', () => {
  it('should be resolved once, and not firing after the restart', async () => {
    const t = await tempDir('pulsegate-alerts-');
    cleanup = t.cleanup;
    const clock = new ManualClock(1_000_000);
    let log = await openLog(t.dir);
    open = log;
    const store = createCheckpointStore({ dir: join(t.dir, 'checkpoints'), clock });
    const before = gatewayAlerts(log, clock, SPIKE);
    // Ingest record 0 is processed (its window fires the spike); records 1 and 2 were appended
    // before its fdatasync and wait for theirs, so the FIRING lands at offset 3.
    for (let i = 0; i < 3; i++) log.append(RECORD_TYPES.ingest, Buffer.from([i]));
    let processedUpTo = 1;
    before.engine.onWindow(hrWindow('a', 0, 250, 0, 'bpm_max'));
    const fired = await loggedTransitions(log);
    expect(fired.map((f) => f.state)).toEqual(['FIRING']);
    const checkpointer = createCheckpointer({
      pipeline: { checkpoint: () => ({ offset: processedUpTo, data: snapshotStages([before.engine]) }) },
      batcher: { flush: () => Promise.resolve() },
      store,
      log,
      logger: quiet,
    });
    await checkpointer.write();
    // Record 1 is processed: its window resolves the episode. Then the gateway is killed.
    processedUpTo = 2;
    before.engine.onWindow(hrWindow('a', 10_000, 150, 0, 'bpm_max'));
    await log.whenDurable(log.nextOffset - 1);
    await log.close();

    // The restart, as gateway/main.ts recovers: prime, restore, replay records 1 and 2, adopt what is left.
    log = await openLog(t.dir);
    open = log;
    const checkpoint = (await createCheckpointStore<StagesState>({ dir: join(t.dir, 'checkpoints'), clock }).read())!;
    expect(checkpoint.offset).toBe(1);
    const after = gatewayAlerts(log, clock, SPIKE);
    await after.alertLog.prime(senderLogsPrimeFrom(checkpoint, log));
    restoreStages([after.engine], checkpoint.data);
    after.engine.onWindow(hrWindow('a', 10_000, 150, 0, 'bpm_max'), true);
    after.engine.adoptLogged(after.alertLog.unmatched());
    after.engine.afterReplay(clock.now());
    expect(after.engine.firing()).toEqual([]);

    // Live again: the next window is normal too, nothing to tell.
    after.engine.onWindow(hrWindow('a', 20_000, 150, 0, 'bpm_max'));
    await log.whenDurable(log.nextOffset - 1);
    expect((await loggedTransitions(log)).map((l) => [l.state, l.id])).toEqual([
      ['FIRING', fired[0]!.id],
      ['RESOLVED', fired[0]!.id],
    ]);
  });
});
