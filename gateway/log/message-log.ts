import { mkdir, open, readdir, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock } from '../clock.js';
import { GatewayError } from '../errors.js';
import {
  classifyIssues,
  crc32Of,
  encodeRecordInto,
  HEADER_BYTES,
  MAX_PAYLOAD_BYTES,
  parseSegmentFileName,
  readOffset,
  readTimestamp,
  readType,
  scanSegmentBuffer,
  segmentFileName,
  u32le,
} from './record-format.js';
import { createLogMetrics } from './log-metrics.js';
import { createTailCache } from './tail-cache.js';
import { fsyncDir } from './checkpoint-store.js';
import type { DurableCallback, LogRecord, MessageLog, RecordBody, RecordType } from './types.js';

export interface MessageLogOptions {
  /** Directory of the segment files (created if missing). */
  readonly dir: string;
  /** A segment is rolled before a record would take it past this size. Default 64 MiB. */
  readonly segmentMaxBytes?: number;
  /**
   * Longest a record waits in the group buffer before its write + fdatasync starts. Default 2.
   * 0: the write starts once the current I/O callbacks have run (setImmediate), so a group is
   * whatever arrived in one turn of the event loop plus whatever arrives during an fdatasync.
   */
  readonly groupCommitIntervalMs?: number;
  /**
   * A group write starts as soon as this much is buffered, and no single write + fdatasync covers
   * more than this (unless one record alone is larger). Recovery relies on that bound: damage in
   * the last this-many bytes of the last segment is a torn group commit, anything earlier is
   * corruption. Default 1 MiB.
   */
  readonly groupCommitMaxBytes?: number;
  /** Above this many bytes of segments on disk, `backpressured` turns true; null = never. */
  readonly diskHighWaterBytes?: number | null;
  /**
   * Bound of the in-memory group buffer while the disk is slower than appends. Overflow policy:
   * backpressure (`backpressured` turns true; appends are still accepted). Default 64 MiB.
   */
  readonly maxPendingBytes?: number;
  /** Skip mid-log corruption at start (reported) instead of refusing to start. */
  readonly skipCorrupt?: boolean;
  /**
   * Bytes of the newest durable records kept in memory (the tail cache), from which followers near
   * the head of the log read instead of from disk. 0 = none. Default TAIL_CACHE_DEFAULT_BYTES.
   */
  readonly tailCacheMaxBytes?: number;
  /** One sparse index entry per this many bytes of segment. Default 64 KiB. */
  readonly indexIntervalBytes?: number;
  readonly clock?: Clock;
  /** Observes each fdatasync. */
  readonly onFsync?: (seconds: number, bytes: number) => void;
  /** Registers the log metrics (see log-metrics.ts) on this registry. */
  readonly registry?: Registry;
  /** Logs the recovery report and a failed write. */
  readonly logger?: Logger;
  /**
   * After a failed write or fdatasync, the first retry of the log's own repair waits this long;
   * each failed retry doubles it up to `writeRetryMaxMs`. Default 100.
   */
  readonly writeRetryInitialMs?: number;
  /** Default 5000. */
  readonly writeRetryMaxMs?: number;
  /** While writes keep failing, at most one log line per this many ms. Default 10000. */
  readonly failureLogIntervalMs?: number;
  /**
   * How often the log checks that its active segment file is still in the directory (a data
   * directory deleted under a running gateway leaves writes to an unlinked file succeeding:
   * acknowledged data that no restart would find). 0 = never. Default 1000.
   */
  readonly fileCheckIntervalMs?: number;
  /**
   * Opens a segment file (flags as for fs.promises.open). Default: fs.promises.open. A seam for
   * tests that inject write and fdatasync faults into real file handles.
   */
  readonly openFile?: (path: string, flags: string) => Promise<FileHandle>;
}

/**
 * Consecutive offsets [from, to) of the log, every one present; `records` holds those of the types
 * asked for, in order. Payloads are views of a read buffer or of the tail cache: copy one to keep it.
 */
export interface ReadSpan {
  readonly from: number;
  readonly to: number;
  readonly records: LogRecord[];
}

/** What start() found and repaired. */
export interface RecoveryReport {
  readonly segments: number;
  readonly records: number;
  readonly firstOffset: number;
  readonly nextOffset: number;
  /** Bytes cut from a torn tail of the last segment (0 when the log was closed cleanly). */
  readonly truncatedBytes: number;
  readonly truncatedSegment: string | null;
  /** Offset of the last good record, -1 when the log is empty. */
  readonly lastOffset: number;
  /** Mid-log damage skipped because skipCorrupt was set. */
  readonly skipped: readonly CorruptRegion[];
  readonly durationMs: number;
}

export interface CorruptRegion {
  readonly segment: string;
  /** Offset the first damaged record should have carried. */
  readonly offset: number;
  /** Byte position in the segment; -1 for a missing segment. */
  readonly position: number;
  readonly bytes: number;
  readonly reason: string;
}

export interface SegmentInfo {
  readonly file: string;
  readonly baseOffset: number;
  /** baseOffset - 1 when the segment holds no record. */
  readonly lastOffset: number;
  readonly bytes: number;
  /** Append time of the newest record, ms; NaN when empty. */
  readonly lastTimestamp: number;
  /** Whether this is the segment appends go to (never deleted by retention). */
  readonly active: boolean;
}

export interface LogStats {
  readonly appendedRecords: number;
  readonly appendedBytes: number;
  readonly sizeBytes: number;
  readonly pendingBytes: number;
  readonly fsyncs: number;
  readonly recoveryTruncatedBytes: number;
  /** What the tail cache holds: bytes of records plus a fixed overhead per group commit (bounded by tailCacheMaxBytes). */
  readonly tailCacheBytes: number;
}

/** The MessageLog contract plus what retention, metrics and tooling need from this implementation. */
export interface FileMessageLog extends MessageLog {
  readonly dir: string;
  /** Every offset below this is durable (fdatasync'd). */
  readonly durableOffset: number;
  /**
   * Set while the log cannot write (a write or fdatasync failed, e.g. ENOSPC): appends are refused
   * with this retryable error, `backpressured` is true, and the log repairs itself in the
   * background (cut the active segment back to its durable end, probe a write + fdatasync) with
   * backoff; null again once a probe succeeded.
   */
  readonly writeFailure: GatewayError | null;
  /** Set by start(). */
  readonly recovery: RecoveryReport | null;
  /** Resolves once `offset` is durable; rejects if the log fails or closes first. */
  whenDurable(offset: number): Promise<void>;
  /**
   * Resolves once `durableOffset > offset`, also for an offset not appended yet and across a write
   * failure (the wait goes on while the log repairs itself): what a follower of the log waits on.
   * Rejects when the log closes or `signal` aborts (with the signal's reason).
   */
  whenDurableBeyond(offset: number, signal?: AbortSignal): Promise<void>;
  /**
   * Like read(), but hands out records in arrays (one per disk chunk): the fast replay path.
   * Payloads are views of the chunk read from disk: copy one to keep it long.
   */
  readBatches(from: number, to?: number): AsyncIterable<LogRecord[]>;
  /**
   * What followers read (tailLog): the durable records [from, to) as spans, only those of `types`
   * (all when null or missing: records of other types are passed over unread). Offsets missing
   * between spans, or before the first, are gone (retention or damage skipped at startup). Served
   * from the tail cache (see tailCacheMaxBytes) while it holds the offsets, else from disk.
   */
  readSpans(from: number, to?: number, types?: readonly RecordType[] | null): AsyncIterable<ReadSpan>;
  segments(): SegmentInfo[];
  /**
   * Deletes whole segments from the head whose every record is below `offset`; the active segment
   * is never deleted. Returns the deleted file names.
   */
  deleteSegmentsBefore(offset: number): Promise<string[]>;
  stats(): LogStats;
}

interface Segment {
  readonly base: number;
  readonly name: string;
  readonly path: string;
  /** Bytes including records still in the group buffer. */
  size: number;
  /** Bytes written and fdatasync'd. */
  durableSize: number;
  lastOffset: number;
  lastTimestamp: number;
  idxOffsets: number[];
  idxPositions: number[];
  lastIndexedPos: number;
  /** Damage skipped at start (skipCorrupt): readers jump over it. */
  holes: { start: number; end: number }[];
  /**
   * The first this-many bytes are whole records whose CRC and offsets start() checked, one after
   * the other from byte 0: a read there does not check each CRC again (damage to them from then
   * on is found by the next start). 0 for a segment with holes and for one rolled to since start.
   */
  verifiedSize: number;
}

/** A point in the group buffer where the writer must fdatasync (chunk bound) and maybe roll. */
interface Cut {
  readonly pos: number;
  /** Offset of the first record after the cut. */
  readonly offset: number;
  readonly roll: Segment | null;
}

const READ_CHUNK_BYTES = 256 * 1024;
/**
 * Default bound of the tail cache: a few seconds of records at a high ingest rate, so followers
 * that keep up (log consumers, the SSE hub) never read the disk. Not in the config schema: a
 * follower that falls further behind reads the disk as before, only slower.
 */
export const TAIL_CACHE_DEFAULT_BYTES = 4 * 1024 * 1024;
/** A write failure this soon after a repair is the same episode (see fail()). */
const RELAPSE_MS = 30_000;

function corruptError(segment: string, offset: number, position: number, reason: string): GatewayError {
  return new GatewayError(
    'GW_ERR_LOG_CORRUPT',
    `log segment ${segment} is corrupt at offset ${offset} (byte ${position}): ${reason}; set log.skipCorrupt to skip it`,
    { details: { segment, offset, position, reason } },
  );
}

function ioError(what: string, cause: unknown, retryable = false): GatewayError {
  return new GatewayError('GW_ERR_LOG_IO', `log ${what} failed: ${(cause as Error)?.message ?? String(cause)}`, { cause, retryable });
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}


/**
 * Creates the hybrid message log over the segment files in `options.dir`. The log is usable once
 * start() has recovered it (start() is idempotent).
 */
export async function createMessageLog(options: MessageLogOptions): Promise<FileMessageLog> {
  const dir = options.dir;
  const segmentMaxBytes = options.segmentMaxBytes ?? 64 * 1024 * 1024;
  const groupIntervalMs = options.groupCommitIntervalMs ?? 2;
  const groupMaxBytes = Math.max(HEADER_BYTES + 1, options.groupCommitMaxBytes ?? 1024 * 1024);
  const highWater = options.diskHighWaterBytes ?? null;
  const maxPendingBytes = options.maxPendingBytes ?? 64 * 1024 * 1024;
  const skipCorrupt = options.skipCorrupt ?? false;
  const indexInterval = options.indexIntervalBytes ?? 64 * 1024;
  const clock = options.clock ?? systemClock;
  const logger = options.logger;
  const retryInitialMs = Math.max(1, options.writeRetryInitialMs ?? 100);
  const retryMaxMs = Math.max(retryInitialMs, options.writeRetryMaxMs ?? 5000);
  const failureLogIntervalMs = options.failureLogIntervalMs ?? 10_000;
  const fileCheckIntervalMs = options.fileCheckIntervalMs ?? 1000;
  const openFile = options.openFile ?? open;
  // The repair probe: short enough that a crash mid-probe leaves what recovery calls a torn tail.
  const probeBytes = Math.min(groupMaxBytes, 64 * 1024);
  const metrics = options.registry === undefined ? null : createLogMetrics(options.registry);
  const cache = createTailCache(Math.max(0, options.tailCacheMaxBytes ?? TAIL_CACHE_DEFAULT_BYTES));
  const onFsync =
    metrics === null
      ? options.onFsync
      : (seconds: number, bytes: number): void => {
          metrics.observeFsync(seconds, bytes);
          options.onFsync?.(seconds, bytes);
        };

  let segments: Segment[] = [];
  let nextOffset = 0;
  let durableNext = 0;
  let totalBytes = 0;
  let recovery: RecoveryReport | null = null;
  let startPromise: Promise<void> | null = null;
  let started = false;
  let closed = false;
  let closePromise: Promise<void> | null = null;
  let failure: GatewayError | null = null;
  // Repair after a failed write: see fail() and repair().
  let failedSince = 0;
  let repairAttempts = 0;
  let repairTimer: NodeJS.Timeout | null = null;
  let repairing: Promise<void> | null = null;
  let lastFailureLog = 0;
  let resumedAt = -Infinity;
  // Segments rolled to in the failed group: their files (if created) hold nothing durable.
  let abandoned: Segment[] = [];
  // The active segment's file was found unlinked: the next group fails instead of writing.
  let activeFileGone: Error | null = null;
  let fileCheckTimer: NodeJS.Timeout | null = null;
  let fileChecking = false;

  // Group buffer (double-buffered: appends fill `buf` while `spare` is being written).
  let buf: Buffer = Buffer.allocUnsafe(Math.max(64 * 1024, Math.min(groupMaxBytes * 2, 8 * 1024 * 1024)));
  let spare: Buffer | null = null;
  let len = 0;
  let chunkStart = 0;
  let cuts: Cut[] = [];
  let cbs: DurableCallback[] = [];
  let cbOffsets: number[] = [];
  let pendingSince = 0;
  let active: Segment | null = null;

  // Writer state.
  let writeSeg: Segment | null = null;
  let writeFh: FileHandle | null = null;
  let flushing = false;
  // The group write waits on a timeout, or (interval 0) on an immediate: one of the two is set.
  let timer: NodeJS.Timeout | null = null;
  let immediate: NodeJS.Immediate | null = null;
  const armed = (): boolean => timer !== null || immediate !== null;
  const arm = (ms: number): void => {
    if (ms < 1) immediate = setImmediate(kick);
    else timer = setTimeout(kick, ms);
  };
  const disarm = (): void => {
    if (timer !== null) clearTimeout(timer);
    if (immediate !== null) clearImmediate(immediate);
    timer = null;
    immediate = null;
  };
  let idleWaiters: (() => void)[] = [];
  let durableWaiters: { offset: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  // Followers (see whenDurableBeyond): one per waiting reader, removed on abort; never failed by a write error.
  let followers: { offset: number; resolve: () => void; reject: (err: Error) => void }[] = [];

  let appendedRecords = 0;
  let appendedBytes = 0;
  let fsyncs = 0;

  function newSegment(base: number): Segment {
    const name = segmentFileName(base);
    return {
      base,
      name,
      path: join(dir, name),
      size: 0,
      durableSize: 0,
      lastOffset: base - 1,
      lastTimestamp: Number.NaN,
      idxOffsets: [],
      idxPositions: [],
      lastIndexedPos: -Infinity,
      holes: [],
      verifiedSize: 0,
    };
  }

  async function recover(): Promise<void> {
    const t0 = performance.now();
    await mkdir(dir, { recursive: true });
    const entries = (await readdir(dir))
      .map((name) => ({ name, base: parseSegmentFileName(name) }))
      .filter((e): e is { name: string; base: number } => e.base !== null)
      .sort((a, b) => a.base - b.base);
    const skipped: CorruptRegion[] = [];
    let truncatedBytes = 0;
    let truncatedSegment: string | null = null;
    let records = 0;
    let expectedNext: number | null = null;
    for (let i = 0; i < entries.length; i++) {
      const { name, base } = entries[i]!;
      const seg = newSegment(base);
      const isLast = i === entries.length - 1;
      if (expectedNext !== null && base !== expectedNext) {
        if (base < expectedNext) throw corruptError(name, base, 0, `segment overlaps offsets up to ${expectedNext - 1} of the previous segment`);
        if (!skipCorrupt) throw corruptError(name, expectedNext, -1, `offsets ${expectedNext}..${base - 1} are missing (a segment is missing before this one)`);
        skipped.push({ segment: name, offset: expectedNext, position: -1, bytes: 0, reason: `missing offsets ${expectedNext}..${base - 1}` });
      }
      let data = await readFile(seg.path);
      let scan = scanSegmentBuffer(data, base, indexInterval);
      if (isLast && scan.issues.length > 0) {
        const cutAt = classifyIssues(scan, true, groupMaxBytes).tailFrom;
        if (cutAt >= 0) {
          truncatedBytes = scan.fileBytes - cutAt;
          truncatedSegment = name;
          data = data.subarray(0, cutAt);
          scan = scanSegmentBuffer(data, base, indexInterval);
          const fh = await openFile(seg.path, 'r+');
          try {
            await fh.truncate(cutAt);
            await fh.datasync();
          } finally {
            await fh.close();
          }
        }
      }
      for (const is of scan.issues) {
        if (!skipCorrupt) {
          const why =
            is.end < scan.fileBytes
              ? `${is.reason} damage followed by valid records at byte ${is.end}`
              : `${is.reason} damage at the end of a segment that is not the last`;
          throw corruptError(name, is.expectedOffset, is.position, why);
        }
        skipped.push({ segment: name, offset: is.expectedOffset, position: is.position, bytes: is.end - is.position, reason: is.reason });
        seg.holes.push({ start: is.position, end: is.end });
      }
      seg.size = data.length;
      seg.durableSize = data.length;
      seg.verifiedSize = scan.issues.length === 0 ? data.length : 0;
      seg.lastOffset = scan.lastOffset;
      seg.lastTimestamp = scan.records > 0 ? scan.lastTimestamp : Number.NaN;
      seg.idxOffsets = scan.idxOffsets;
      seg.idxPositions = scan.idxPositions;
      seg.lastIndexedPos = scan.idxPositions.length > 0 ? scan.idxPositions[scan.idxPositions.length - 1]! : -Infinity;
      records += scan.records;
      totalBytes += data.length;
      segments.push(seg);
      expectedNext = seg.lastOffset + 1;
    }
    if (segments.length === 0) {
      const seg = newSegment(0);
      const fh = await openFile(seg.path, 'wx');
      await fh.close();
      await fsyncDir(dir);
      segments.push(seg);
    }
    active = segments[segments.length - 1]!;
    writeSeg = active;
    writeFh = await openFile(active.path, 'r+');
    nextOffset = active.lastOffset + 1;
    durableNext = nextOffset;
    recovery = {
      segments: segments.length,
      records,
      firstOffset: segments[0]!.base,
      nextOffset,
      truncatedBytes,
      truncatedSegment,
      lastOffset: nextOffset - 1,
      skipped,
      durationMs: performance.now() - t0,
    };
    if (logger !== undefined) {
      const r = recovery;
      if (r.truncatedBytes > 0) logger.warn({ segment: r.truncatedSegment, truncatedBytes: r.truncatedBytes, lastOffset: r.lastOffset }, 'log: torn tail truncated');
      for (const sk of r.skipped) logger.error(sk, 'log: corrupt region skipped (skipCorrupt)');
      logger.info({ segments: r.segments, records: r.records, firstOffset: r.firstOffset, nextOffset: r.nextOffset, ms: Math.round(r.durationMs) }, 'log recovered');
    }
  }

  function closedError(): GatewayError {
    return new GatewayError('GW_ERR_LOG_CLOSED', started ? 'the message log is closed' : 'the message log is not started');
  }

  function append(type: RecordType, payload: Uint8Array | RecordBody, onDurable?: DurableCallback): number {
    if (!started || closed || failure !== null) {
      const err = failure ?? closedError();
      if (onDurable !== undefined) process.nextTick(onDurable, err, -1);
      return -1;
    }
    const plen = payload.length;
    if (plen > MAX_PAYLOAD_BYTES) {
      // Refused through the callback like any other failed append: callers run inside broker
      // hooks, where a throw would reach the event loop. The log itself stays usable.
      const err = new GatewayError('GW_ERR_LOG_IO', `record of ${plen} bytes exceeds the log's limit of ${MAX_PAYLOAD_BYTES}`);
      if (onDurable !== undefined) process.nextTick(onDurable, err, -1);
      return -1;
    }
    const size = HEADER_BYTES + plen;
    const offset = nextOffset;
    let seg = active!;
    if (seg.size > 0 && seg.size + size > segmentMaxBytes) {
      seg = newSegment(offset);
      segments.push(seg);
      active = seg;
      cuts.push({ pos: len, offset, roll: seg });
      chunkStart = len;
    } else if (len > chunkStart && len - chunkStart + size > groupMaxBytes) {
      cuts.push({ pos: len, offset, roll: null });
      chunkStart = len;
    }
    if (len === 0) pendingSince = performance.now();
    if (len + size > buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(buf.length * 2, len + size));
      buf.copy(bigger, 0, 0, len);
      buf = bigger;
    }
    const ts = clock.now();
    encodeRecordInto(buf, len, type, offset, ts, payload);
    if (seg.size - seg.lastIndexedPos >= indexInterval) {
      seg.idxOffsets.push(offset);
      seg.idxPositions.push(seg.size);
      seg.lastIndexedPos = seg.size;
    }
    seg.size += size;
    seg.lastOffset = offset;
    seg.lastTimestamp = ts;
    totalBytes += size;
    len += size;
    nextOffset = offset + 1;
    appendedRecords++;
    appendedBytes += size;
    if (onDurable !== undefined) {
      cbs.push(onDurable);
      cbOffsets.push(offset);
    }
    if (!flushing) {
      if (len >= groupMaxBytes) {
        disarm();
        kick();
      } else if (!armed()) {
        arm(groupIntervalMs);
      }
    }
    return offset;
  }

  function kick(): void {
    timer = null;
    immediate = null;
    if (flushing) return;
    flushing = true;
    void flushLoop();
  }

  async function flushLoop(): Promise<void> {
    while (len > 0 && failure === null) {
      await flushOnce();
      if (len > 0 && !closed && len < groupMaxBytes) {
        const wait = groupIntervalMs - (performance.now() - pendingSince);
        if (wait >= 1) {
          flushing = false;
          arm(wait);
          return;
        }
      }
    }
    flushing = false;
    for (const w of idleWaiters.splice(0)) w();
  }

  async function flushOnce(): Promise<void> {
    const wbuf = buf;
    const wlen = len;
    const wcuts = cuts;
    const wcbs = cbs;
    const wcbOffsets = cbOffsets;
    const endOffset = nextOffset;
    buf = spare ?? Buffer.allocUnsafe(wbuf.length);
    spare = null;
    len = 0;
    chunkStart = 0;
    cuts = [];
    cbs = [];
    cbOffsets = [];
    let start = 0;
    let cbi = 0;
    let callbackError: unknown = null;
    try {
      if (activeFileGone !== null) throw activeFileGone;
      for (let c = 0; c <= wcuts.length; c++) {
        const cut = wcuts[c];
        const stop = cut === undefined ? wlen : cut.pos;
        const stopOffset = cut === undefined ? endOffset : cut.offset;
        if (stop > start) {
          const seg = writeSeg!;
          let written = 0;
          while (written < stop - start) {
            const { bytesWritten } = await writeFh!.write(wbuf, start + written, stop - start - written, seg.durableSize + written);
            written += bytesWritten;
          }
          const t0 = performance.now();
          await writeFh!.datasync();
          const seconds = (performance.now() - t0) / 1000;
          fsyncs++;
          onFsync?.(seconds, written);
          seg.durableSize += written;
          cache.push(durableNext, stopOffset, wbuf, start, stop);
          durableNext = stopOffset;
          while (cbi < wcbs.length && wcbOffsets[cbi]! < stopOffset) {
            try {
              wcbs[cbi]!(null, wcbOffsets[cbi]!);
            } catch (err) {
              callbackError ??= err;
            }
            cbi++;
          }
          resolveDurableWaiters();
        }
        if (cut?.roll) {
          await writeFh!.close();
          writeFh = null;
          writeFh = await openFile(cut.roll.path, 'wx');
          await fsyncDir(dir);
          writeSeg = cut.roll;
        }
        start = stop;
      }
      spare = wbuf;
    } catch (err) {
      // After a failed write or fdatasync the page cache state is unknown: the log stops taking
      // appends rather than acknowledge data it cannot vouch for.
      fail(ioError('write', err, true));
      const e = failure!;
      for (; cbi < wcbs.length; cbi++) {
        try {
          wcbs[cbi]!(e, wcbOffsets[cbi]!);
        } catch (cbErr) {
          callbackError ??= cbErr;
        }
      }
    }
    if (callbackError !== null) {
      const e = callbackError;
      process.nextTick(() => {
        throw e;
      });
    }
  }

  function resolveDurableWaiters(): void {
    if (followers.length > 0) {
      const waiting: typeof followers = [];
      for (const f of followers) {
        if (f.offset < durableNext) f.resolve();
        else waiting.push(f);
      }
      followers = waiting;
    }
    if (durableWaiters.length === 0) return;
    const keep: typeof durableWaiters = [];
    for (const w of durableWaiters) {
      if (w.offset < durableNext) w.resolve();
      else keep.push(w);
    }
    durableWaiters = keep;
  }

  /**
   * After a failed write or fdatasync nothing past the durable end can be vouched for (the page
   * cache may hold some of it, the disk some other part). So everything not yet durable is
   * refused (its callbacks get the error: no PUBACK goes out for it) and taken back: the offsets
   * are handed out again after the repair, to new records. Appends are refused until repair()
   * has cut the active segment back to its durable end and a probe write + fdatasync succeeded.
   */
  function fail(err: GatewayError): void {
    if (failure !== null) return;
    failure = err;
    const now = performance.now();
    // A probe can succeed on a still-full disk (the cut freed a few pages), and the next group
    // fail again: such a relapse keeps the backoff and the log quiet instead of starting over.
    const relapse = now - resumedAt < RELAPSE_MS;
    if (!relapse) {
      failedSince = now;
      repairAttempts = 0;
      lastFailureLog = now;
      logger?.error({ err }, `log write failed: appends are refused while the log repairs itself (retrying every ${retryInitialMs}..${retryMaxMs} ms)`);
    } else if (now - lastFailureLog >= failureLogIntervalMs) {
      lastFailureLog = now;
      logger?.warn({ error: err.message, attempts: repairAttempts, failingForMs: Math.round(now - failedSince) }, 'log writes failing again; appends refused');
    }
    const pendingCbs = cbs;
    const pendingOffsets = cbOffsets;
    cbs = [];
    cbOffsets = [];
    len = 0;
    cuts = [];
    chunkStart = 0;
    disarm();
    rollBack();
    for (let i = 0; i < pendingCbs.length; i++) process.nextTick(pendingCbs[i]!, err, pendingOffsets[i]!);
    for (const w of durableWaiters.splice(0)) w.reject(err);
    scheduleRepair();
  }

  /** Forgets every record past the durable end: sizes, offsets, index entries, rolled segments. */
  function rollBack(): void {
    const seg = writeSeg!;
    const at = segments.indexOf(seg);
    abandoned.push(...segments.slice(at + 1));
    segments = segments.slice(0, at + 1);
    seg.size = seg.durableSize;
    seg.lastOffset = durableNext - 1;
    // The durable part's newest time is not kept; the newer one only makes retention wait longer.
    if (seg.durableSize === 0) seg.lastTimestamp = Number.NaN;
    let keep = seg.idxPositions.length;
    while (keep > 0 && seg.idxPositions[keep - 1]! >= seg.durableSize) keep--;
    seg.idxOffsets.length = keep;
    seg.idxPositions.length = keep;
    seg.lastIndexedPos = keep > 0 ? seg.idxPositions[keep - 1]! : -Infinity;
    active = seg;
    nextOffset = durableNext;
    totalBytes = segments.reduce((sum, s) => sum + s.size, 0);
  }

  function scheduleRepair(): void {
    if (closed || repairTimer !== null) return;
    const ms = Math.min(retryMaxMs, retryInitialMs * 2 ** Math.min(repairAttempts, 30));
    repairTimer = setTimeout(() => {
      repairTimer = null;
      repairing = repair().finally(() => {
        repairing = null;
      });
    }, ms);
    repairTimer.unref();
  }

  /**
   * One repair attempt: drop the files of abandoned segments, reopen the active one, cut it to
   * its durable size (a partly written group must not stay: recovery would find damage followed
   * by the records appended after the repair), then prove the disk takes a write + fdatasync
   * again. A crash at any step leaves at most a torn tail within groupCommitMaxBytes.
   */
  async function repair(): Promise<void> {
    repairAttempts++;
    let fh: FileHandle | null = null;
    try {
      if (writeFh !== null) {
        const old = writeFh;
        writeFh = null;
        // Its state is unknown after the failure; a failing close changes nothing that follows.
        await old.close().catch((err: unknown) => logger?.debug({ err }, 'log: closing the failed segment handle failed'));
      }
      for (const seg of abandoned) {
        try {
          await unlink(seg.path);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
      if (abandoned.length > 0) await fsyncDir(dir);
      abandoned = [];
      const seg = writeSeg!;
      fh = await openFile(seg.path, 'r+');
      activeFileGone = null;
      await fh.truncate(seg.durableSize);
      await fh.datasync();
      const probe = Buffer.alloc(probeBytes);
      let written = 0;
      while (written < probe.length) {
        const { bytesWritten } = await fh.write(probe, written, probe.length - written, seg.durableSize + written);
        written += bytesWritten;
      }
      await fh.datasync();
      await fh.truncate(seg.durableSize);
      await fh.datasync();
    } catch (err) {
      if (fh !== null) await fh.close().catch((closeErr: unknown) => logger?.debug({ err: closeErr }, 'log: closing the probe handle failed'));
      failure = ioError('write', err, true);
      const now = performance.now();
      if (now - lastFailureLog >= failureLogIntervalMs) {
        lastFailureLog = now;
        logger?.warn(
          { error: (err as Error).message, attempts: repairAttempts, failingForMs: Math.round(now - failedSince) },
          'log writes still failing; appends stay refused',
        );
      }
      scheduleRepair();
      return;
    }
    if (closed) {
      await fh.close();
      return;
    }
    writeFh = fh;
    failure = null;
    const now = performance.now();
    // Said once per episode, not after every probe that a relapse takes back.
    if (now - resumedAt >= RELAPSE_MS) logger?.warn({ attempts: repairAttempts, failedForMs: Math.round(now - failedSince), nextOffset }, 'log writes work again: appends resumed');
    resumedAt = now;
  }

  /**
   * A file unlinked while open keeps taking writes and fdatasyncs, so a deleted data directory
   * shows nowhere else: st_nlink of the open handle turns 0. The log then fails as on a write
   * error (acks withheld, readiness down, repair retried: reopening the path fails while it is gone).
   */
  async function checkActiveFile(): Promise<void> {
    const fh = writeFh;
    if (fileChecking || closed || failure !== null || fh === null || activeFileGone !== null) return;
    fileChecking = true;
    try {
      const st = await fh.stat();
      if (st.nlink > 0 || fh !== writeFh) return;
      activeFileGone = new Error(`the active segment ${writeSeg?.name ?? ''} was removed from ${dir} (was the data directory deleted?)`);
    } catch (err) {
      if (fh !== writeFh) return;
      activeFileGone = err as Error;
    } finally {
      fileChecking = false;
    }
    if (!flushing && !closed && failure === null) fail(ioError('file check', activeFileGone, true));
  }

  function whenDurable(offset: number): Promise<void> {
    if (offset < durableNext) return Promise.resolve();
    if (failure !== null) return Promise.reject(failure);
    if (closed && !flushing && len === 0) return Promise.reject(closedError());
    if (offset >= nextOffset) return Promise.reject(new GatewayError('GW_ERR_LOG_IO', `offset ${offset} has not been appended (next is ${nextOffset})`));
    return new Promise((resolve, reject) => durableWaiters.push({ offset, resolve, reject }));
  }

  function whenDurableBeyond(offset: number, signal?: AbortSignal): Promise<void> {
    if (offset < durableNext) return Promise.resolve();
    if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
    if (closed) return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        followers = followers.filter((f) => f !== entry);
        reject(signal!.reason as Error);
      };
      const entry = {
        offset,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      followers.push(entry);
    });
  }

  function segmentIndexFor(offset: number, segs: Segment[]): number {
    let lo = 0;
    let hi = segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (segs[mid]!.base <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  function seekPosition(seg: Segment, offset: number): number {
    const offs = seg.idxOffsets;
    let lo = 0;
    let hi = offs.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (offs[mid]! <= offset) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best === -1 ? 0 : seg.idxPositions[best]!;
  }

  /**
   * Reads the records [from, to) of one segment from disk, as spans (see ReadSpan). A torn or
   * damaged record on disk (other than a hole skipped at startup) is thrown as GW_ERR_LOG_CORRUPT.
   */
  async function* readSegment(seg: Segment, from: number, to: number, wanted: ReadonlySet<number> | null): AsyncGenerator<ReadSpan, void, undefined> {
    let fh: FileHandle;
    try {
      fh = await openFile(seg.path, 'r');
    } catch (err) {
      // Deleted by retention since the read began: its records are gone by policy.
      if (isNotFound(err)) return;
      throw ioError(`read of ${seg.name}`, err);
    }
    try {
      const limit = seg.durableSize;
      const verified = seg.verifiedSize;
      let filePos = seekPosition(seg, from);
      let chunk: Buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
      let have = 0;
      let lastSeen = from - 1;
      for (;;) {
        const want = Math.min(chunk.length - have, limit - (filePos + have));
        if (want > 0) {
          const { bytesRead } = await fh.read(chunk, have, want, filePos + have);
          have += bytesRead;
          if (bytesRead === 0 && have === 0) return;
        }
        if (have === 0) return;
        let p = 0;
        const spans: ReadSpan[] = [];
        let span: { from: number; to: number; records: LogRecord[] } | null = null;
        let done = false;
        let jumpTo = -1;
        while (p + HEADER_BYTES <= have) {
          const plen = u32le(chunk, p + 4);
          const size = HEADER_BYTES + plen;
          if (plen <= MAX_PAYLOAD_BYTES && p + size > have && filePos + p + size <= limit) break;
          // Past what start() verified (records appended since, or a segment with holes), each
          // record's CRC is checked here: a torn or damaged record there is still found.
          if (plen > MAX_PAYLOAD_BYTES || p + size > have || (filePos + p + size > verified && crc32Of(chunk, p + 4, p + size) !== u32le(chunk, p))) {
            const at = filePos + p;
            const hole = seg.holes.find((h) => h.start === at);
            if (hole === undefined) throw corruptError(seg.name, lastSeen + 1, at, 'record failed its CRC on read');
            jumpTo = hole.end;
            break;
          }
          const offset = readOffset(chunk, p);
          if (offset >= to) {
            done = true;
            break;
          }
          lastSeen = offset;
          if (offset >= from) {
            // A span holds consecutive offsets only: a jump (a hole skipped) starts a new one.
            if (span === null || span.to !== offset) {
              span = { from: offset, to: offset, records: [] };
              spans.push(span);
            }
            span.to = offset + 1;
            const type = readType(chunk, p);
            if (wanted === null || wanted.has(type)) {
              span.records.push({ offset, type: type as RecordType, timestamp: readTimestamp(chunk, p), payload: chunk.subarray(p + HEADER_BYTES, p + size) });
            }
          }
          p += size;
        }
        for (const sp of spans) yield sp;
        if (done) return;
        if (jumpTo >= 0) {
          filePos = jumpTo;
          have = 0;
          continue;
        }
        if (filePos + have >= limit) {
          if (p >= have) return;
          throw corruptError(seg.name, lastSeen + 1, filePos + p, 'record extends past the durable end of the segment');
        }
        // Carry the partial record into a fresh chunk (the yielded payloads keep the old one).
        const rest = have - p;
        const need = rest >= HEADER_BYTES ? HEADER_BYTES + chunk.readUInt32LE(p + 4) : 0;
        const next = Buffer.allocUnsafe(Math.max(READ_CHUNK_BYTES, need));
        chunk.copy(next, 0, p, have);
        chunk = next;
        filePos += p;
        have = rest;
      }
    } finally {
      await fh.close();
    }
  }

  /**
   * Reads [from, end) from disk, segment by segment, as spans; stops early (returns true) once the
   * tail cache holds the next offset, so the caller goes on from memory.
   */
  async function* readDisk(from: number, end: number, wanted: ReadonlySet<number> | null): AsyncGenerator<ReadSpan, boolean, undefined> {
    const segs = segments.slice();
    let next = from;
    for (let i = segmentIndexFor(next, segs); i < segs.length && next < end; i++) {
      const seg = segs[i]!;
      if (seg.lastOffset < next) continue;
      for await (const span of readSegment(seg, next, end, wanted)) {
        yield span;
        next = span.to;
        if (next < end && cache.firstOffset <= next && next < cache.endOffset) return true;
      }
      next = Math.max(next, Math.min(seg.lastOffset + 1, end));
    }
    return false;
  }

  async function* readSpans(from: number, to?: number, types?: readonly RecordType[] | null): AsyncGenerator<ReadSpan, void, undefined> {
    if (!started) throw closedError();
    const wanted = types === undefined || types === null ? null : new Set<number>(types);
    const end = to === undefined ? nextOffset : Math.min(to, nextOffset);
    let next = Math.max(from, segments[0]!.base);
    if (next >= end) return;
    await whenDurable(end - 1);
    while (next < end) {
      // Retention deleted what follows while the reader was away (after a span from memory or
      // from disk): on from the log's new first offset, as a read from disk would (a gap), even
      // where the cache still holds the deleted records.
      next = Math.max(next, segments[0]!.base);
      if (next >= end) return;
      const hit = cache.read(next, end, wanted);
      if (hit !== null) {
        const span: ReadSpan = { from: next, to: hit.next, records: hit.records };
        next = hit.next;
        yield span;
        continue;
      }
      const disk = readDisk(next, end, wanted);
      let r: IteratorResult<ReadSpan, boolean> = { done: false, value: undefined as unknown as ReadSpan };
      try {
        for (r = await disk.next(); r.done !== true; r = await disk.next()) {
          next = r.value.to;
          yield r.value;
        }
      } finally {
        // A reader that stops early closes the segment file of the disk read.
        if (r.done !== true) await disk.return(false);
      }
      // Read to the end on disk (what was not found there is gone): done.
      if (!r.value) return;
    }
  }

  async function* readBatches(from: number, to?: number): AsyncGenerator<LogRecord[], void, undefined> {
    for await (const span of readSpans(from, to, null)) {
      if (span.records.length > 0) yield span.records;
    }
  }

  async function* read(from: number, to?: number): AsyncGenerator<LogRecord, void, undefined> {
    for await (const batch of readBatches(from, to)) {
      for (const r of batch) yield r;
    }
  }

  const log: FileMessageLog = {
    dir,
    start() {
      startPromise ??= recover().then(() => {
        started = true;
        if (fileCheckIntervalMs > 0 && !closed) {
          fileCheckTimer = setInterval(() => void checkActiveFile(), fileCheckIntervalMs);
          fileCheckTimer.unref();
        }
      });
      return startPromise;
    },
    append,
    appendDurable(type, payload) {
      return new Promise<number>((resolve, reject) => {
        append(type, payload, (err, offset) => (err === null ? resolve(offset) : reject(err)));
      });
    },
    get nextOffset() {
      return nextOffset;
    },
    get firstOffset() {
      return segments.length === 0 ? 0 : segments[0]!.base;
    },
    get durableOffset() {
      return durableNext;
    },
    get writeFailure() {
      return failure;
    },
    get recovery() {
      return recovery;
    },
    get backpressured() {
      return failure !== null || (highWater !== null && totalBytes > highWater) || len > maxPendingBytes;
    },
    read,
    readBatches,
    readSpans,
    whenDurable,
    whenDurableBeyond,
    segments() {
      return segments.map((s) => ({
        file: s.name,
        baseOffset: s.base,
        lastOffset: s.lastOffset,
        bytes: s.size,
        lastTimestamp: s.lastTimestamp,
        active: s === active,
      }));
    },
    async deleteSegmentsBefore(offset) {
      const deleted: string[] = [];
      // Only segments the writer has finished with (fully durable) are candidates.
      while (segments.length > 1 && segments[0] !== writeSeg && segments[0]!.lastOffset < offset) {
        const seg = segments[0]!;
        try {
          await unlink(seg.path);
        } catch (err) {
          if (!isNotFound(err)) throw ioError(`delete of ${seg.name}`, err);
        }
        if (segments[0] === seg) segments = segments.slice(1);
        totalBytes -= seg.size;
        deleted.push(seg.name);
      }
      if (deleted.length > 0) await fsyncDir(dir);
      return deleted;
    },
    stats() {
      return {
        appendedRecords,
        appendedBytes,
        sizeBytes: totalBytes,
        pendingBytes: len,
        fsyncs,
        recoveryTruncatedBytes: recovery?.truncatedBytes ?? 0,
        tailCacheBytes: cache.bytes,
      };
    },
    close() {
      closePromise ??= (async () => {
        if (!started) {
          // A start still running must settle before the handles can be released.
          if (startPromise !== null) await startPromise.catch(() => undefined);
        }
        closed = true;
        disarm();
        if (fileCheckTimer !== null) clearInterval(fileCheckTimer);
        fileCheckTimer = null;
        if (repairTimer !== null) clearTimeout(repairTimer);
        repairTimer = null;
        if (repairing !== null) await repairing;
        if (len > 0 && failure === null && !flushing) kick();
        if (flushing) await new Promise<void>((resolve) => idleWaiters.push(resolve));
        const fh = writeFh;
        writeFh = null;
        if (fh !== null) await fh.close();
        for (const w of durableWaiters.splice(0)) w.reject(failure ?? closedError());
        for (const f of followers.splice(0)) f.reject(closedError());
      })();
      return closePromise;
    },
  };
  metrics?.attachLog(log);
  return log;
}
