import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import type { WindowConfig } from '../../../gateway/config/config.js';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { createEventBus, type GatewayEvents } from '../../../gateway/events.js';
import { createIngestMetrics } from '../../../gateway/ingest/ingest-metrics.js';
import { createIngestRecordReader } from '../../../gateway/ingest/ingest-record.js';
import { createPayloadDecoder } from '../../../gateway/ingest/payload-decoder.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createCheckpointStore } from '../../../gateway/log/checkpoint-store.js';
import { encodeIngestRecord } from '../../../gateway/log/ingest-record-format.js';
import { createMessageLog, type FileMessageLog } from '../../../gateway/log/message-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { ReadingPipeline } from '../../../gateway/pipeline/reading-pipeline.js';
import { recover } from '../../../gateway/pipeline/recovery.js';
import { SequenceTracker } from '../../../gateway/pipeline/sequence-tracker.js';
import { createWindowEngine } from '../../../gateway/window/window-engine.js';
import { tempDir } from '../log/log-test-helpers.js';

/** Recovery (gateway/pipeline/recovery.ts) on a real log and checkpoint files. */
const kinds = createKindRegistry();
const decoder = createPayloadDecoder(kinds, loadConfig({ env: {} }).ingest);
const reader = createIngestRecordReader(kinds, decoder);
const windowConfig: WindowConfig = {
  defaultSizesMs: [10_000],
  sizesMs: {},
  outOfOrdernessMs: 0,
  allowedLatenessMs: 30_000,
  idleTimeoutMs: 60_000,
  maxOpenWindowsPerKey: 64,
  maxDevices: 5_000,
  maxWatermarkSkewMs: 5_000,
  maxForgottenDevices: 500_000,
};
const T0 = 1_700_000_000_000;
const silent = pino({ level: 'silent' });

function rig(clock: ManualClock) {
  const registry = new Registry();
  const events = createEventBus();
  const seen: { name: keyof GatewayEvents; replay: boolean }[] = [];
  events.on('window.emitted', (e) => seen.push({ name: 'window.emitted', replay: e.replay }));
  events.on('reading.durable', (e) => seen.push({ name: 'reading.durable', replay: e.replay }));
  const windows = createWindowEngine({ kinds, config: windowConfig, clock });
  const metrics = createIngestMetrics(registry, [...kinds.keys()]);
  const pipeline = new ReadingPipeline({ kinds, tracker: new SequenceTracker(256, 5_000), windows, events, metrics, registry, clock });
  return { pipeline, windows, seen, metrics };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A log of 40 single-reading heart-rate records, one device, 200 ms apart (offsets 0..39). */
async function filledLog(): Promise<{ log: FileMessageLog; dir: string }> {
  const d = await tempDir();
  cleanups.push(d.cleanup);
  const log = await createMessageLog({ dir: d.dir });
  await log.start();
  cleanups.push(() => log.close());
  for (let i = 0; i < 40; i++) {
    const ts = T0 + i * 200;
    log.append(RECORD_TYPES.ingest, encodeIngestRecord(ts, 'sensors/heart-rate/runner', Buffer.from(JSON.stringify({ seq: i + 1, ts, bpm: 100 + i }))));
  }
  await log.whenDurable(39);
  return { log, dir: d.dir };
}

describe('recovery', () => {
  it('a checkpoint in the first format ({ tracker, windows }) still restores: dedup and windows continue from it, replayed events are flagged', async () => {
    const { log, dir } = await filledLog();
    const clock = new ManualClock(T0 + 60_000);
    const process = (p: ReadingPipeline, from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const ts = T0 + i * 200;
        p.process([{ kind: 'heart-rate', deviceId: 'runner', seq: i + 1, ts, values: { bpm: 100 + i } }], i, ts);
      }
    };
    // Reference: all 40 records, live.
    const all = rig(clock);
    process(all.pipeline, 0, 40);
    // A checkpoint after 20 records, written as the first format wrote it.
    const before = rig(clock);
    process(before.pipeline, 0, 20);
    const stages = before.pipeline.checkpoint().data.stages;
    const store = createCheckpointStore({ dir });
    await store.write({ offset: 20, data: { tracker: stages['sequence-tracker'], windows: stages['windows'] } });

    const recovered = rig(clock);
    const checkpoint = await createCheckpointStore({ dir }).readLatest();
    const result = await recover({ log, checkpoint, unreadableCheckpoints: [], dir, pipeline: recovered.pipeline, reader, afterReplay: () => undefined, logger: silent });
    expect(result).toMatchObject({ checkpointOffset: 20, replayedRecords: 20 });
    expect(recovered.pipeline.processedUpTo).toBe(40);
    // Same state as the pipeline that saw everything live.
    expect(recovered.pipeline.checkpoint()).toEqual(all.pipeline.checkpoint());
    // The dedup state came from the checkpoint: a resend of seq 3 (before it) is a duplicate.
    process(recovered.pipeline, 2, 3);
    expect(recovered.metrics.totals.duplicates).toBe(1);
    // Replayed events say so; the resend above, live, emitted nothing (a duplicate).
    expect(recovered.seen.length).toBeGreaterThan(0);
    expect(recovered.seen.every((e) => e.replay)).toBe(true);
    expect(recovered.seen.filter((e) => e.name === 'reading.durable')).toHaveLength(20);
  });

  it('should restore the current format ({ stages }) to the same state', async () => {
    const { log, dir } = await filledLog();
    const clock = new ManualClock(T0 + 60_000);
    const live = rig(clock);
    const store = createCheckpointStore({ dir });
    for (let i = 0; i < 40; i++) {
      const ts = T0 + i * 200;
      live.pipeline.process([{ kind: 'heart-rate', deviceId: 'runner', seq: i + 1, ts, values: { bpm: 100 + i } }], i, ts);
      if (i === 24) await store.write(live.pipeline.checkpoint());
    }
    const recovered = rig(clock);
    await recover({ log, checkpoint: await store.readLatest(), unreadableCheckpoints: [], dir, pipeline: recovered.pipeline, reader, afterReplay: () => undefined, logger: silent });
    expect(recovered.pipeline.checkpoint()).toEqual(live.pipeline.checkpoint());
  });
});
