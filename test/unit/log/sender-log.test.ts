import { afterEach, describe, expect, it } from 'vitest';
import type { FileMessageLog } from '../../../gateway/log/message-log.js';
import { createAlertSenderLog, createWindowSenderLog, primeSenderLogs } from '../../../gateway/log/sender-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { ALERT_WIRE_VERSION, type AlertTransition } from '../../../gateway/wire/alert.js';
import { toWindowTransition, type WindowTransition } from '../../../gateway/wire/window.js';
import { openLog, tempDir } from './log-test-helpers.js';

const windowAt = (start: number, count: number): WindowTransition =>
  toWindowTransition({ kind: 'heart-rate', deviceId: 'a', sizeMs: 10_000, slideMs: 10_000, start, end: start + 10_000, group: {}, values: { count }, revision: 0 });

const alertOf = (state: 'FIRING' | 'RESOLVED'): AlertTransition => ({
  v: ALERT_WIRE_VERSION,
  id: '0123456789abcdef0123456789abcdef',
  rule: 'high',
  ruleKind: 'threshold',
  severity: 'warning',
  state,
  kind: 'heart-rate',
  deviceId: 'a',
  group: {},
  value: 190,
  threshold: 180,
  windowStart: 0,
  windowEnd: 10_000,
  episodeStart: 0,
  firedAt: 10_000,
  resolvedAt: state === 'RESOLVED' ? 20_000 : null,
  summary: `high ${state}`,
});

let log: FileMessageLog | null = null;
let cleanup: (() => Promise<void>) | null = null;
afterEach(async () => {
  await log?.close();
  log = null;
  await cleanup?.();
  cleanup = null;
});

/** The log as a crash leaves it: window and alert records between ingest records, then a restart. */
async function loggedBeforeACrash(): Promise<{ dir: string; firstWindow: number; firing: number }> {
  const t = await tempDir('pulsegate-sender-log-');
  cleanup = t.cleanup;
  const before = await openLog(t.dir);
  const windows = createWindowSenderLog(before);
  const alerts = createAlertSenderLog(before);
  before.append(RECORD_TYPES.ingest, Buffer.from('r0'));
  const firstWindow = windows.append(windowAt(0, 3)).offset;
  const firing = alerts.append(alertOf('FIRING')).offset;
  before.append(RECORD_TYPES.ingest, Buffer.from('r1'));
  windows.append(windowAt(10_000, 5));
  await before.whenDurable(before.nextOffset - 1);
  await before.close();
  return { dir: t.dir, firstWindow, firing };
}

describe('primeSenderLogs', () => {
  it('should prime the window and the alert sender logs from one read of the log, each with its own records', async () => {
    const { dir, firstWindow, firing } = await loggedBeforeACrash();
    log = await openLog(dir);
    let reads = 0;
    const counted: Pick<FileMessageLog, 'readSpans'> = {
      readSpans: (from, to, types) => {
        reads++;
        return log!.readSpans(from, to, types);
      },
    };
    const windows = createWindowSenderLog(log);
    const alerts = createAlertSenderLog(log);
    expect(await primeSenderLogs(counted, 0, [windows, alerts])).toEqual([2, 1]);
    expect(reads).toBe(1);

    // What replay emits again is recognised, at the offsets the log has it; the rest is appended.
    expect(windows.append(windowAt(0, 3))).toMatchObject({ offset: firstWindow, logged: true });
    expect(alerts.append(alertOf('FIRING'))).toMatchObject({ offset: firing, logged: true });
    expect(alerts.append(alertOf('RESOLVED')).logged).toBe(false);
    expect(windows.unmatched().map((u) => u.item.start)).toEqual([10_000]);
    expect(alerts.unmatched()).toEqual([]);
  });

  it('should remember the same items as a prime() of each sender log on its own', async () => {
    const { dir } = await loggedBeforeACrash();
    log = await openLog(dir);
    const one = [createWindowSenderLog(log), createAlertSenderLog(log)] as const;
    await primeSenderLogs(log, 1, one);
    const each = [createWindowSenderLog(log), createAlertSenderLog(log)] as const;
    await each[0].prime(1);
    await each[1].prime(1);
    expect(one[0].unmatched()).toEqual(each[0].unmatched());
    expect(one[1].unmatched()).toEqual(each[1].unmatched());
  });
});
