import { join } from 'node:path';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { Checkpoint } from '../log/checkpoint-store.js';
import { decodeDeviceStatus } from '../log/device-status-record.js';
import type { FileMessageLog } from '../log/message-log.js';
import { RECORD_TYPES } from '../log/types.js';
import type { ReadingPipeline } from './reading-pipeline.js';

/**
 * Recovery at startup: the latest checkpoint, then a replay of every ingest record after it,
 * through the same pipeline the live path uses (flagged `replay` on the event bus).
 */

/** How replay reads an ingest record (ingest's decoder, as the live path decoded it). */
export interface IngestRecordReader {
  /** `receivedAt`: the record's, when the caller has read it already. */
  readings(payload: Buffer, receivedAt?: number): readonly Reading[];
  receivedAt(payload: Buffer): number;
}

export type ReplaySource = Pick<FileMessageLog, 'readSpans'>;

/** What replay reads; the other records of the tail (windows, batches, acks, alerts) are passed over unread. */
const REPLAYED_TYPES = [RECORD_TYPES.ingest, RECORD_TYPES.deviceStatus];

/**
 * Replays the ingest records from `from` on through the pipeline, and the deviceStatus records
 * (when the pipeline takes them); returns how many ingest records and readings.
 */
export async function replayLog(
  log: ReplaySource,
  from: number,
  pipeline: Pick<ReadingPipeline, 'process'> & Partial<Pick<ReadingPipeline, 'deviceStatus'>>,
  reader: IngestRecordReader,
): Promise<{ records: number; readings: number }> {
  let records = 0;
  let readings = 0;
  for await (const span of log.readSpans(from, undefined, REPLAYED_TYPES)) {
    for (const record of span.records) {
      if (record.type === RECORD_TYPES.deviceStatus && pipeline.deviceStatus !== undefined) {
        const status = decodeDeviceStatus(record.payload);
        if (status !== null) pipeline.deviceStatus(status, record.offset, true);
        continue;
      }
      if (record.type !== RECORD_TYPES.ingest) continue;
      const receivedAt = reader.receivedAt(record.payload);
      const rs = reader.readings(record.payload, receivedAt);
      pipeline.process(rs, record.offset, receivedAt, true);
      records++;
      readings += rs.length;
    }
  }
  return { records, readings };
}

export interface RecoveryOptions {
  readonly log: ReplaySource & { readonly firstOffset: number; readonly nextOffset: number };
  /** The latest readable checkpoint and the damaged files met reading it. */
  readonly checkpoint: Checkpoint | null;
  readonly unreadableCheckpoints: readonly string[];
  /** Where the checkpoints live (named in messages). */
  readonly dir: string;
  readonly pipeline: ReadingPipeline;
  readonly reader: IngestRecordReader;
  /** Runs once the replay is done (the windows' idle tick). */
  readonly afterReplay: () => void;
  readonly logger: Logger;
}

export interface RecoveryResult {
  readonly checkpointOffset: number | null;
  readonly replayedRecords: number;
  readonly ms: number;
}

/** Where the replay after `checkpoint` starts: its offset, or the log's first one when the log starts later (or there is none). */
export function replayStart(checkpoint: { readonly offset: number } | null, log: { readonly firstOffset: number }): number {
  return checkpoint === null ? log.firstOffset : Math.max(checkpoint.offset, log.firstOffset);
}

/** Restores the pipeline from the checkpoint and replays the log after it; logs 'recovered from the log'. */
export async function recover(options: RecoveryOptions): Promise<RecoveryResult> {
  const { log, checkpoint, pipeline, logger } = options;
  checkCheckpointAgainstLog(checkpoint?.offset ?? null, options.unreadableCheckpoints, log, options.dir, logger);
  if (checkpoint !== null) pipeline.restore(checkpoint);
  const from = replayStart(checkpoint, log);
  const start = Date.now();
  const { records } = await replayLog(log, from, pipeline, options.reader);
  options.afterReplay();
  const result = { checkpointOffset: checkpoint?.offset ?? null, replayedRecords: records, ms: Date.now() - start };
  if (records > 0 || checkpoint !== null) logger.info(result, 'recovered from the log');
  return result;
}

/**
 * A checkpoint stands for the effect of every record below its offset. One above the log's end
 * means the log lost records it once held (segments deleted by hand): replaying "after" it would
 * skip everything the log has, so startup is refused. One below the log's first offset means the
 * records in between are gone; the replay starts at what is there, loudly.
 */
export function checkCheckpointAgainstLog(
  offset: number | null,
  unreadable: readonly string[],
  log: { readonly firstOffset: number; readonly nextOffset: number },
  dir: string,
  logger: Logger,
): void {
  if (unreadable.length > 0) {
    logger.warn(
      { unreadable, usedOffset: offset },
      offset === null
        ? `damaged checkpoint file(s) in ${dir} ignored; no readable checkpoint is left, so the whole log is replayed`
        : `damaged checkpoint file(s) in ${dir} ignored; using the older checkpoint at offset ${offset} instead`,
    );
  }
  if (offset === null) return;
  if (offset > log.nextOffset) {
    throw new GatewayError(
      'GW_ERR_CHECKPOINT_AHEAD',
      `the checkpoint in ${dir} covers offsets up to ${offset - 1}, but the log there ends at offset ${log.nextOffset - 1} ` +
        `(segment files were deleted or replaced): starting would skip every reading the log holds. ` +
        `To start from what the log holds, accepting that windows and the dedup state restart, remove ${join(dir, 'checkpoint-*.ckpt')} and ${join(dir, 'outbox-*.ckpt')}; ` +
        `or put the missing segment files back`,
      { details: { dir, checkpointOffset: offset, logNextOffset: log.nextOffset } },
    );
  }
  if (offset < log.firstOffset) {
    logger.warn(
      { checkpointOffset: offset, firstOffset: log.firstOffset },
      `the log in ${dir} starts at offset ${log.firstOffset}, after the checkpoint at ${offset}: records ${offset}..${log.firstOffset - 1} are missing and are not replayed`,
    );
  }
}
