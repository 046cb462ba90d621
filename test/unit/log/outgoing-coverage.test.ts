import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FileMessageLog } from '../../../gateway/log/message-log.js';
import { encodeOutgoing, outgoingCoverage } from '../../../gateway/log/outbox.js';
import { primeSenderLogs } from '../../../gateway/log/sender-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { coversOfBatch, encodeBatch } from '../../../gateway/sinks/batch-codec.js';
import type { BatchCovers } from '../../../gateway/sinks/types.js';
import { openLog, tempDir } from './log-test-helpers.js';

/** The store's outgoing batches in a real log, chained up from a replay's start by the startup pass. */
describe('outgoingCoverage', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let log: FileMessageLog;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('pulsegate-coverage-'));
    log = await openLog(dir);
  });
  afterEach(async () => {
    await log.close();
    await cleanup();
  });

  const batch = (destination: string, covers?: BatchCovers): void => {
    log.append(RECORD_TYPES.outgoing, encodeOutgoing(destination, encodeBatch({ readings: [], windows: [], health: [], ...(covers === undefined ? {} : { covers }) })));
  };
  const ingest = (): void => void log.append(RECORD_TYPES.ingest, Buffer.from('not read'));

  async function chainEnd(from: number, primeFrom = 0): Promise<number> {
    await log.whenDurable(log.nextOffset - 1);
    const coverage = outgoingCoverage('sink', from, coversOfBatch);
    await primeSenderLogs(log, primeFrom, [coverage]);
    return coverage.below;
  }

  it('should follow consecutive and overlapping ranges of its destination, past other records and destinations', async () => {
    ingest();
    batch('sink', { from: 0, below: 5 });
    ingest();
    batch('other', { from: 100, below: 900 });
    batch('sink', { from: 5, below: 9 });
    batch('sink', { from: 9, below: 9 });
    batch('sink', { from: 7, below: 14 });
    ingest();
    expect(await chainEnd(3)).toBe(14);
  });

  it('should stop at a range that starts above the chain, and at a batch that says nothing, whatever follows', async () => {
    batch('sink', { from: 0, below: 5 });
    batch('sink', { from: 6, below: 9 });
    batch('sink', { from: 5, below: 20 });
    expect(await chainEnd(0)).toBe(5);
    await log.close();
    await cleanup();
    ({ dir, cleanup } = await tempDir('pulsegate-coverage-'));
    log = await openLog(dir);
    batch('sink', { from: 0, below: 5 });
    batch('sink');
    batch('sink', { from: 5, below: 20 });
    expect(await chainEnd(0)).toBe(5);
  });

  it('should start at the replay start: ranges below it change nothing, one reaching past it extends it', async () => {
    batch('sink', { from: 0, below: 4 });
    expect(await chainEnd(10)).toBe(10);
    batch('sink', { from: 4, below: 12 });
    expect(await chainEnd(10)).toBe(12);
    // Only what the pass reads counts: from offset 1 on, the first batch is not seen.
    expect(await chainEnd(0, 1)).toBe(0);
  });
});
