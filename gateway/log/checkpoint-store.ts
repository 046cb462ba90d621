import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock.js';
import { GatewayError } from '../errors.js';
import { crc32Of } from './record-format.js';

/** A checkpoint: `data` is state that includes the effect of every log record below `offset`. */
export interface Checkpoint<T = unknown> {
  readonly offset: number;
  readonly data: T;
  /** Wall-clock time of the write, ms. */
  readonly writtenAt: number;
  /**
   * The log's next offset when `data` was captured (absent in checkpoints written before it was
   * kept): the records the stages appended themselves (alert transitions, windows) below it are
   * in `data`, those at or above it came after the capture. It can be above `offset`: a stage
   * appends after the ingest records still waiting for their fdatasync.
   */
  readonly capturedNext?: number;
}

/** What a checkpoint write takes: a checkpoint without its write time. */
export type CheckpointState<T = unknown> = Omit<Checkpoint<T>, 'writtenAt'>;

export interface CheckpointStoreOptions {
  readonly dir: string;
  /** File name prefix, so several owners can share a directory. Default "checkpoint". */
  readonly name?: string;
  /** Checkpoints kept on disk (the newest and its fallbacks). Default 2. */
  readonly keep?: number;
  readonly clock?: Clock;
}

export interface CheckpointStore<T = unknown> {
  /** Writes atomically: temp file, fsync, rename, fsync of the directory. Writes are serialised. */
  write(state: CheckpointState<T>): Promise<void>;
  /**
   * The newest readable checkpoint, falling back to an older one when the newest is damaged;
   * null when there is none.
   */
  read(): Promise<Checkpoint<T> | null>;
  /** Same as read(). */
  readLatest(): Promise<Checkpoint<T> | null>;
  /** Offset of the newest checkpoint written or read by this store; null before either. */
  readonly latestOffset: number | null;
  /** Damaged checkpoint files met by the last read(). */
  readonly unreadable: readonly string[];
}

const FORMAT_VERSION = 1;

/** fsync a directory, so a file created or renamed in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * A checkpoint file is `<json>\n<crc32 hex>\n`; it is named `<name>-<sequence>.ckpt` with a
 * 20-digit sequence, so the newest sorts last. A write lands as `.<file>.tmp` first: a crash
 * leaves at most a temp file, which read() never looks at and the next write removes.
 */
export function createCheckpointStore<T = unknown>(options: CheckpointStoreOptions): CheckpointStore<T> {
  const { dir } = options;
  const name = options.name ?? 'checkpoint';
  const keep = Math.max(1, options.keep ?? 2);
  const clock = options.clock ?? systemClock;
  const pattern = new RegExp(`^${name.replace(/[^A-Za-z0-9_-]/g, '\\$&')}-(\\d{20})\\.ckpt$`);
  let latestOffset: number | null = null;
  let unreadable: string[] = [];
  let chain: Promise<void> = Promise.resolve();

  async function list(): Promise<{ file: string; seq: number }[]> {
    let files: string[];
    try {
      files = await readdir(dir);
    } catch (err) {
      // No directory yet: no checkpoint yet (write() creates it).
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return files
      .map((file) => ({ file, m: pattern.exec(file) }))
      .filter((e): e is { file: string; m: RegExpExecArray } => e.m !== null)
      .map((e) => ({ file: e.file, seq: Number(e.m[1]) }))
      .sort((a, b) => a.seq - b.seq);
  }

  async function removeTemps(): Promise<void> {
    for (const file of await readdir(dir)) {
      if (file.startsWith(`.${name}-`) && file.endsWith('.tmp')) await unlink(join(dir, file));
    }
  }

  function parse(text: Buffer, file: string): Checkpoint<T> {
    const nl = text.lastIndexOf(10, text.length - 2);
    if (nl < 0 || text[text.length - 1] !== 10) throw new Error(`${file}: truncated`);
    const crc = parseInt(text.toString('latin1', nl + 1, text.length - 1), 16);
    if (crc !== crc32Of(text, 0, nl)) throw new Error(`${file}: CRC mismatch`);
    const body = JSON.parse(text.toString('utf8', 0, nl)) as { version: number; offset: number; writtenAt: number; data: T; capturedNext?: unknown };
    if (body.version !== FORMAT_VERSION || !Number.isSafeInteger(body.offset)) throw new Error(`${file}: unknown format`);
    const cp = { offset: body.offset, data: body.data, writtenAt: body.writtenAt };
    const next = body.capturedNext;
    // One below the offset is not one the checkpointer writes: taken as absent (the offset then serves).
    return typeof next === 'number' && Number.isSafeInteger(next) && next >= body.offset ? { ...cp, capturedNext: next } : cp;
  }

  async function doWrite(state: CheckpointState<T>): Promise<void> {
    if (!Number.isSafeInteger(state.offset) || state.offset < 0) {
      throw new GatewayError('GW_ERR_CHECKPOINT', `checkpoint offset must be a non-negative integer, got ${state.offset}`);
    }
    if (state.capturedNext !== undefined && (!Number.isSafeInteger(state.capturedNext) || state.capturedNext < state.offset)) {
      throw new GatewayError('GW_ERR_CHECKPOINT', `checkpoint capturedNext must be an integer at or above its offset ${state.offset}, got ${state.capturedNext}`);
    }
    try {
      await mkdir(dir, { recursive: true });
      const existing = await list();
      const seq = existing.length === 0 ? 1 : existing[existing.length - 1]!.seq + 1;
      const file = `${name}-${String(seq).padStart(20, '0')}.ckpt`;
      const tmp = join(dir, `.${file}.tmp`);
      const json = Buffer.from(JSON.stringify({ version: FORMAT_VERSION, offset: state.offset, ...(state.capturedNext === undefined ? {} : { capturedNext: state.capturedNext }), writtenAt: clock.now(), data: state.data }), 'utf8');
      const tail = Buffer.from(`\n${crc32Of(json, 0, json.length).toString(16).padStart(8, '0')}\n`, 'latin1');
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(Buffer.concat([json, tail]));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, join(dir, file));
      await fsyncDir(dir);
      latestOffset = state.offset;
      const stale = existing.slice(0, Math.max(0, existing.length + 1 - keep));
      for (const s of stale) await unlink(join(dir, s.file));
      if (stale.length > 0) await fsyncDir(dir);
      await removeTemps();
    } catch (err) {
      throw new GatewayError('GW_ERR_CHECKPOINT', `checkpoint write to ${dir} failed: ${(err as Error).message}`, { cause: err, retryable: true });
    }
  }

  async function readNewest(): Promise<Checkpoint<T> | null> {
    let files: { file: string; seq: number }[];
    try {
      files = await list();
    } catch (err) {
      throw new GatewayError('GW_ERR_CHECKPOINT', `checkpoint directory ${dir} unreadable: ${(err as Error).message}`, { cause: err, retryable: true });
    }
    const bad: string[] = [];
    for (let i = files.length - 1; i >= 0; i--) {
      const { file } = files[i]!;
      try {
        const cp = parse(await readFile(join(dir, file)), file);
        unreadable = bad;
        latestOffset = cp.offset;
        return cp;
      } catch (err) {
        // Fall back to the previous checkpoint; the damaged one is reported, not deleted.
        bad.push(`${file}: ${(err as Error).message}`);
      }
    }
    unreadable = bad;
    return null;
  }

  return {
    write(state) {
      const p = chain.then(() => doWrite(state));
      chain = p.catch(() => undefined);
      return p;
    },
    read: readNewest,
    readLatest: readNewest,
    get latestOffset() {
      return latestOffset;
    },
    get unreadable() {
      return unreadable;
    },
  };
}
